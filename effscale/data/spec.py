"""What data a run reads and how it is split, as one value: :class:`DataSpec` (the source, its
folder, the held-out fractions, the resolution, the split seed, the training subset, the named
splits). It is validated when built, so a command line or a family config builds it once, before
anything is written, and hands the same value to loading (:func:`effscale.data.load_data`),
training (:func:`effscale.training.train_variant`), evaluation and fine-tuning. The pipeline
options (batch, augmentation, shuffling, caching) are not part of it: they are the loader's.

>>> spec = DataSpec("digits", resolution=16, train_fraction=0.5, seed=3)
>>> spec.replace(resolution=8).resolution, spec.source
(8, 'digits')
>>> DataSpec("digits", validation_fraction=1.5)
Traceback (most recent call last):
...
effscale.common.errors.UserError: validation_fraction must be in (0, 1), got 1.5
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

import numpy as np

from effscale.common.errors import UserError

# The keys a training record stores its data under (results.json "data", run.json), and the field each names.
RECORD_KEYS = {"dataset": "source", "data_dir": "data_dir", "validation_fraction": "validation_fraction",
               "test_fraction": "test_fraction", "split_seed": "seed", "train_split": "train_split",
               "validation_split": "validation_split", "test_split": "test_split",
               "train_examples": "train_examples", "train_fraction": "train_fraction"}


@dataclass(frozen=True)
class DataSpec:
    """The data of a run.

    ``source``: ``"digits"``, ``"fashion_mnist"``, ``"mnist"``, ``"idx:FOLDER"``, ``"tfds:NAME"``
    or an image folder (:mod:`effscale.data.pipeline`); ``data_dir``: a tfds source's folder.
    ``resolution``: the square size images are resized to. ``validation_fraction`` of the
    training images and ``test_fraction`` of all images are held out (stratified, with ``seed``)
    where the source has no such split of its own; ``seed`` fixes those splits (and, unless the
    loader is given a ``shuffle_seed``, the shuffling). ``train_examples`` or ``train_fraction``
    keeps a class-balanced part of the training split; ``train_split`` / ``validation_split`` /
    ``test_split`` name a tfds source's own splits; ``download`` lets a tfds source download.

    >>> DataSpec("fashion_mnist", train_fraction=0.1).train_fraction
    0.1
    >>> DataSpec("digits", resolution=2)
    Traceback (most recent call last):
    ...
    effscale.common.errors.UserError: resolution must be an integer in 4..4096, got 2
    """

    source: str = "digits"
    data_dir: str | None = None
    resolution: int = 32
    validation_fraction: float = 0.2
    test_fraction: float = 0.2
    seed: int = 0
    train_examples: int | None = None
    train_fraction: float | None = None
    train_split: str | None = None
    validation_split: str | None = None
    test_split: str | None = None
    download: bool = False

    def __post_init__(self):
        from effscale.common.checks import SEED_MAX, check_int

        for key in ("resolution", "seed", "train_examples"):  # numpy integers (a sweep's values) as ints
            if isinstance(getattr(self, key), np.integer):
                object.__setattr__(self, key, int(getattr(self, key)))
        if not isinstance(self.source, str):
            raise UserError(f"dataset must be a dataset name or folder, got {self.source!r}")
        check_data_numbers(self.resolution, self.validation_fraction, self.test_fraction, self.train_examples,
                           self.train_fraction)
        check_int(self.seed, "seed", 0, SEED_MAX)
        for key in ("data_dir", "train_split", "validation_split", "test_split"):
            if getattr(self, key) is not None and not isinstance(getattr(self, key), str):
                raise UserError(f"{key} must be text, got {getattr(self, key)!r}")
        if not isinstance(self.download, bool):
            raise UserError(f"download must be true or false, got {self.download!r}")

    @classmethod
    def of(cls, data: "DataSpec | str") -> "DataSpec":
        """``data`` itself, or the spec of a source name with every other field at its default.

        >>> DataSpec.of("mnist") == DataSpec("mnist"), DataSpec.of(DataSpec("digits", seed=2)).seed
        (True, 2)
        """
        if isinstance(data, cls):
            return data
        if isinstance(data, (str, os.PathLike)):
            return cls(os.fspath(data))
        raise UserError(f"dataset must be a dataset name or folder, got {data!r}")

    def replace(self, **changes) -> "DataSpec":
        """A copy with ``changes`` (validated again).

        >>> DataSpec("digits").replace(resolution=8).resolution
        8
        """
        return dataclasses.replace(self, **changes)

    def record(self) -> dict:
        """The fields a training record stores (its ``data`` keys: ``dataset``, ``split_seed``, ...).

        >>> DataSpec("digits", seed=4).record()["split_seed"]
        4
        """
        return {key: getattr(self, field) for key, field in RECORD_KEYS.items()}

    @classmethod
    def from_record(cls, record: dict, resolution: int, **changes) -> "DataSpec":
        """The spec a training record's ``data`` describes, at ``resolution``, with ``changes``.

        >>> DataSpec.from_record(DataSpec("digits", seed=4).record(), 16).seed
        4
        """
        fields = {field: record[key] for key, field in RECORD_KEYS.items() if record.get(key) is not None}
        return cls(**{**fields, "resolution": resolution, **changes})


def check_data_numbers(resolution, validation_fraction, test_fraction, train_examples, train_fraction) -> None:
    """The one-line UserError of an out-of-range resolution, fraction or training subset."""
    if not (isinstance(resolution, (int, np.integer)) and 4 <= resolution <= 4096):
        raise UserError(f"resolution must be an integer in 4..4096, got {resolution!r}")
    for name, value in (("validation_fraction", validation_fraction), ("test_fraction", test_fraction)):
        if not (isinstance(value, (int, float)) and 0 < value < 1):
            raise UserError(f"{name} must be in (0, 1), got {value!r}")
    if train_examples is not None and not (isinstance(train_examples, (int, np.integer)) and train_examples >= 1):
        raise UserError(f"train_examples must be a positive integer, got {train_examples!r}")
    if train_fraction is not None and not (isinstance(train_fraction, (int, float)) and 0 < train_fraction <= 1):
        raise UserError(f"train_fraction must be in (0, 1], got {train_fraction!r}")
    if train_examples is not None and train_fraction is not None:
        raise UserError("give train_examples or train_fraction, not both")
