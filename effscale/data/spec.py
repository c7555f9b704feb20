"""What data a run reads and how it is split, as one value: :class:`DataSpec` (the source, its
folder, the held-out fractions, the resolution, the seeds, the training subset, the named
splits). It is validated when built, so a command line or a family config can build it once,
before anything is written, and hand the same value to loading (:meth:`DataSpec.load`), and the
pipeline options (batch, augmentation, caching) stay beside it.

>>> spec = DataSpec("digits", resolution=16, train_fraction=0.5, seed=3)
>>> splits = spec.load(batch_size=32)
>>> splits.num_classes, splits.train_size, splits.resolution
(10, 574, 16)
>>> DataSpec("digits", validation_fraction=1.5)
Traceback (most recent call last):
...
effscale.common.errors.UserError: validation_fraction must be in (0, 1), got 1.5
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from effscale.common.errors import UserError


@dataclass(frozen=True)
class DataSpec:
    """The data of a run (see :func:`effscale.data.pipeline.load_data` for each field's meaning).

    ``seed`` fixes the held-out splits (and, unless the loader is given ``shuffle_seed``, the
    shuffling); ``train_examples`` or ``train_fraction`` keeps a class-balanced part of the
    training split; ``train_split`` / ``validation_split`` / ``test_split`` name a tfds source's
    own splits; ``download`` lets a tfds source download.

    >>> DataSpec("digits").replace(resolution=8).resolution
    8
    >>> DataSpec("", resolution=8)
    Traceback (most recent call last):
    ...
    effscale.common.errors.UserError: dataset must be a dataset name or folder, got ''
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
        from effscale.data.pipeline import _check_arguments

        if not isinstance(self.source, str) or not self.source.strip():
            raise UserError(f"dataset must be a dataset name or folder, got {self.source!r}")
        _check_arguments(self.resolution, 1, self.validation_fraction, self.test_fraction, self.train_examples,
                        self.train_fraction)
        check_int(self.seed, "seed", 0, SEED_MAX)
        for key in ("data_dir", "train_split", "validation_split", "test_split"):
            if getattr(self, key) is not None and not isinstance(getattr(self, key), str):
                raise UserError(f"{key} must be text, got {getattr(self, key)!r}")
        if not isinstance(self.download, bool):
            raise UserError(f"download must be true or false, got {self.download!r}")

    def replace(self, **changes) -> "DataSpec":
        """A copy with ``changes`` (validated again)."""
        return dataclasses.replace(self, **changes)

    def check(self) -> None:
        """The one-line UserError of a source that is unknown or not installed (nothing read)."""
        from effscale.data.pipeline import check_source

        check_source(self.source, self.data_dir)

    def load(self, batch_size: int = 64, *, augment: bool | str = False, flip: bool = True,
             randaugment: bool | float = False, shuffle_seed: int | None = None, drop_remainder: bool = False,
             cache: bool = True, shuffle_buffer: int | None = None, validation_batch_size: int | None = None,
             in_memory: bool = False):
        """The batched :class:`~effscale.data.pipeline.DataSplits` of this data; the keywords are
        the pipeline's (batch, augmentation, shuffling, caching), not the data's."""
        from effscale.data.pipeline import load_data

        return load_data(self.source, resolution=self.resolution, batch_size=batch_size,
                         validation_fraction=self.validation_fraction, seed=self.seed, augment=augment,
                         data_dir=self.data_dir, train_split=self.train_split,
                         validation_split=self.validation_split, cache=cache, test_fraction=self.test_fraction,
                         test_split=self.test_split, train_examples=self.train_examples,
                         train_fraction=self.train_fraction, shuffle_seed=shuffle_seed, flip=flip,
                         randaugment=randaugment, drop_remainder=drop_remainder, download=self.download,
                         shuffle_buffer=shuffle_buffer, validation_batch_size=validation_batch_size,
                         in_memory=in_memory)
