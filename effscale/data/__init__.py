"""The data stage: sources (digits, IDX, tfds, image folders), three splits, one tf.data pipeline;
:class:`DataSpec` says which data a run reads and how it is split.

>>> from effscale.data import DataSpec, load_data
>>> load_data(DataSpec("digits", resolution=8), batch_size=32).num_classes
10
"""

from effscale.data.pipeline import load_data
from effscale.data.spec import DataSpec

__all__ = ["DataSpec", "load_data"]
