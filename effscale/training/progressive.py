"""Progressive learning (EfficientNetV2, Tan & Le 2021, arXiv 2104.00298, Algorithm 1).

Training is split into ``stages`` runs of consecutive epochs. Stage ``i`` of ``M`` trains at
image size ``S_i = S_0 + (S_e - S_0) * i / (M - 1)`` with regularization
``phi_i = phi_0 + (phi_e - phi_0) * i / (M - 1)``: small images with weak regularization first,
the full size with the strongest regularization last. The regularizers are the ones effscale's
recipe already has, driven by Keras layers: the classifier ``dropout`` rate, the magnitude of
keras' ``RandAugment`` (its ``factor``, 0..1) and the alpha of keras' ``MixUp``.

A :class:`Progressive` is a field of :class:`~effscale.training.recipe.Recipe` (``Recipe(progressive=...)``),
a JSON object in recipe files and configs, and ``--progressive`` on ``effscale train``::

    stages=4,resolution=16-32,dropout=0.1-0.3,randaugment=0.1-0.5,mixup=0-0.2

``resolution``'s end defaults to the variant's resolution; a regularizer left out stays as the
recipe has it. Each stage builds the model at its own image size and carries the weights and
the optimizer state over through the per-epoch checkpoint, so a run killed in the middle of a
stage resumes there with that stage's settings.

>>> p = Progressive.parse("stages=3,resolution=16-32,dropout=0.1-0.3")
>>> [(s.epochs, s.resolution, s.dropout) for s in p.plan(epochs=6, end_resolution=32)]
[((0, 2), 16, 0.1), ((2, 4), 24, 0.2), ((4, 6), 32, 0.3)]
>>> Progressive.from_dict(p.to_dict()) == p
True
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from effscale.common.errors import UserError

RANGES = ("dropout", "randaugment", "mixup")


@dataclass(frozen=True)
class Stage:
    """What one stage trains with: its epochs ``[start, stop)`` and settings."""

    index: int
    epochs: tuple[int, int]
    resolution: int
    dropout: float | None
    randaugment: float | None
    mixup: float | None

    def to_dict(self) -> dict:
        return {"stage": self.index + 1, "epochs": list(self.epochs), "resolution": self.resolution,
                "dropout": self.dropout, "randaugment": self.randaugment, "mixup": self.mixup}


def _pair(name: str, value, low: float, high: float, kind=float) -> tuple | None:
    from effscale.common.checks import shorten

    if value is None:
        return None
    if not (isinstance(value, (list, tuple)) and len(value) == 2):
        raise UserError(f"progressive {name} must be a [start, end] pair, got {shorten(value)}")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise UserError(f"progressive {name} must be numbers, got {shorten(value)}")
    for v in value:  # range first: int(inf) or float(10**400) would raise OverflowError
        if not (math.isfinite(v) and low <= v <= high):
            raise UserError(f"progressive {name} values must be in {low:g}..{high:g}, got {shorten(value)}")
    if kind is int and any(float(v) != int(v) for v in value):
        raise UserError(f"progressive {name} must be whole pixels, got {shorten(value)}")
    return tuple(kind(v) for v in value)


@dataclass(frozen=True)
class Progressive:
    """Stages, image size and regularization ranges of progressive learning.

    ``resolution`` is ``(start, end)`` with ``end`` None for the variant's resolution; each
    range in :data:`RANGES` is ``(start, end)`` or None (not scheduled).
    """

    stages: int = 4
    resolution: tuple = (128, None)
    dropout: tuple | None = None
    randaugment: tuple | None = None
    mixup: tuple | None = None

    def __post_init__(self):
        if not (isinstance(self.stages, int) and not isinstance(self.stages, bool) and 1 <= self.stages <= 100):
            from effscale.common.checks import shorten

            raise UserError(f"progressive stages must be an integer in 1..100, got {shorten(self.stages)}")
        resolution = self.resolution
        if isinstance(resolution, (list, tuple)) and len(resolution) == 2 and resolution[1] is None:
            start = _pair("resolution", (resolution[0], resolution[0]), 8, 4096, int)[0]
            object.__setattr__(self, "resolution", (start, None))
        else:
            object.__setattr__(self, "resolution", _pair("resolution", resolution, 8, 4096, int))
        for name, high in (("dropout", 0.99), ("randaugment", 1.0), ("mixup", 10.0)):
            object.__setattr__(self, name, _pair(name, getattr(self, name), 0.0, high))

    # -- serialization --------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data) -> "Progressive":
        if isinstance(data, Progressive):
            return data
        if not isinstance(data, dict):
            raise UserError(f"progressive must be an object such as {{\"stages\": 4, \"resolution\": [16, 32]}}, "
                            f"got {data!r}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(f"unknown progressive key(s) {unknown}: expected some of {sorted(known)}")
        return cls(**data)

    @classmethod
    def parse(cls, text: str) -> "Progressive":
        """The command-line form ``stages=4,resolution=16-32,dropout=0.1-0.3`` (``resolution=16``
        alone ends at the variant's resolution).

        >>> Progressive.parse("stages=2,resolution=64").resolution
        (64, None)
        >>> Progressive.parse("stages=2,size=64")
        Traceback (most recent call last):
        ...
        effscale.common.errors.UserError: --progressive token 'size=64': expected stages=N, resolution=A[-B], dropout=A-B, randaugment=A-B or mixup=A-B
        """
        from effscale.common.checks import parse_float, parse_int, shorten

        fields: dict = {}
        for token in str(text).replace(" ", "").split(","):
            key, sep, value = token.partition("=")
            if not sep or key not in ("stages", "resolution", *RANGES) or key in fields:
                raise UserError(f"--progressive token {shorten(token)}: expected stages=N, resolution=A[-B], "
                                "dropout=A-B, randaugment=A-B or mixup=A-B")
            if key == "stages":
                fields[key] = parse_int(value, "--progressive stages", 1, 100)
                continue
            parts = value.split("-")
            if key == "resolution" and len(parts) == 1:
                parts.append(None)
            if len(parts) != 2:
                raise UserError(f"--progressive {key}={shorten(value)}: expected START-END")
            fields[key] = tuple(None if p is None else parse_float(p, f"--progressive {key}") for p in parts)
        return cls(**fields)

    # -- the schedule -------------------------------------------------------------------------
    def plan(self, epochs: int, end_resolution: int) -> list[Stage]:
        """The stages of a run of ``epochs`` epochs: equal runs of epochs (earlier stages one
        shorter when they do not divide), values interpolated linearly from start to end."""
        if epochs < self.stages:
            raise UserError(f"progressive learning with {self.stages} stages needs at least {self.stages} epochs, "
                            f"got {epochs}")
        start_size, end_size = self.resolution[0], self.resolution[1] or end_resolution
        stages = []
        for i in range(self.stages):
            t = i / (self.stages - 1) if self.stages > 1 else 1.0
            lerp = (lambda pair: None if pair is None else round(pair[0] + (pair[1] - pair[0]) * t, 6))  # noqa: E731
            size = int(round(start_size + (end_size - start_size) * t))
            size += size % 2  # even sizes (the last stage trains at exactly the variant's)
            stages.append(Stage(i, (epochs * i // self.stages, epochs * (i + 1) // self.stages),
                                end_size if i == self.stages - 1 else size,
                                lerp(self.dropout), lerp(self.randaugment), lerp(self.mixup)))
        return stages


def stage_of_epoch(stages: list[Stage], epoch: int) -> Stage:
    """The stage that trains (0-based) ``epoch``."""
    for stage in stages:
        if stage.epochs[0] <= epoch < stage.epochs[1]:
            return stage
    return stages[-1]


def dropout_in_force(model) -> float:
    """The classifier dropout rate of a built effscale model (0 when it has no dropout layer)."""
    try:
        return float(model.get_layer("top_dropout").rate)
    except ValueError:
        return 0.0


def mixup_transform(alpha: float, seed: int):
    """A ``tf.data`` map over one-hot ``(images, labels)`` batches that applies keras' MixUp."""
    import keras

    mix = keras.layers.MixUp(alpha=alpha, seed=seed)

    def apply(images, labels):
        mixed = mix({"images": images, "labels": labels}, training=True)
        return mixed["images"], mixed["labels"]

    return apply
