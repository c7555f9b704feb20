"""The data stage: sources (digits, IDX, tfds, image folders), three splits, one tf.data pipeline.

>>> from effscale.data import load_data
>>> callable(load_data)
True
"""

from effscale.data.pipeline import load_data

__all__ = ["load_data"]
