"""The training set-up as one typed, serializable value.

EfficientNet's ImageNet recipe (Tan & Le 2019; tensorflow/tpu ``main.py``): RMSprop (decay 0.9,
momentum 0.9, epsilon 1e-3), learning rate 0.016 per 256 images (0.256 at batch 4096), a
warm-up of 5 epochs, then exponential decay of 0.97 every 2.4 epochs, label smoothing 0.1,
weight decay 1e-5, the variant's dropout, drop-connect 0.2, and an exponential moving average
of the weights with decay 0.9999 over 350 epochs. :meth:`Recipe.efficientnet` returns that.

The defaults of :class:`Recipe` are for short runs (a few epochs on small data): EfficientNet's RMSprop and
learning rate (linearly scaled), one warm-up epoch, cosine decay, BatchNormalization momentum
0.9 (0.99 leaves the moving statistics unconverged after a few hundred steps and a short run
evaluates at chance: measured on the bundled digits, see docs/training.md) and no EMA.

>>> r = Recipe(epochs=3, optimizer="sgd")
>>> Recipe.from_dict(r.to_dict()) == r
True
>>> Recipe.efficientnet().optimizer, Recipe.efficientnet().schedule
('rmsprop', 'exponential')
>>> p = Recipe(epochs=8, progressive={"stages": 4, "resolution": [16, 32], "dropout": [0.1, 0.3]})
>>> Recipe.from_json(p.to_json()) == p, p.progressive.dropout
(True, (0.1, 0.3))
>>> Recipe(optimizer="lamb")
Traceback (most recent call last):
...
effscale.common.errors.UserError: recipe optimizer 'lamb': expected one of rmsprop, sgd, adam
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from effscale.common.errors import UserError
from effscale.common.io import JsonSettings

OPTIMIZERS = ("rmsprop", "sgd", "adam")
SCHEDULES = ("cosine", "exponential", "constant")


@dataclass(frozen=True)
class Recipe(JsonSettings):
    """How to train a variant. ``learning_rate`` is per ``base_batch`` images and scales
    linearly with the global batch; ``batch_size`` is per replica unless ``batch_scope`` is
    ``'global'``; ``weight_decay`` is decoupled (Keras optimizers' ``weight_decay``)."""

    _json_name = "recipe"

    epochs: int = 10
    batch_size: int = 64
    batch_scope: str = "per_replica"        # per_replica | global
    optimizer: str = "rmsprop"              # rmsprop | sgd | adam
    learning_rate: float = 0.016            # per base_batch images (EfficientNet: 0.016)
    base_batch: int = 256
    momentum: float = 0.9                   # sgd and rmsprop momentum
    rmsprop_rho: float = 0.9
    epsilon: float = 1e-3                   # rmsprop / adam epsilon (EfficientNet: 1e-3)
    warmup_epochs: float = 1.0
    schedule: str = "cosine"                # cosine | exponential | constant
    decay_epochs: float = 2.4               # exponential: decay every decay_epochs ...
    decay_rate: float = 0.97                # ... by decay_rate
    min_learning_rate_ratio: float = 0.0    # cosine floor, as a fraction of the peak
    label_smoothing: float = 0.1
    weight_decay: float = 1e-5
    dropout: float | None = None            # None: the variant's
    drop_connect: float = 0.2
    bn_momentum: float = 0.9
    bn_epsilon: float = 1e-3
    sync_batch_norm: bool = True            # batch statistics over all replicas when there are several
    ema_decay: float | None = None          # e.g. 0.9999 for long runs
    gradient_clip_norm: float | None = None
    augment: bool | str = False             # True / "resized-crop": random resized crop + flip; "padded-crop"
    randaugment: bool = False
    seed: int = 0
    progressive: "Progressive | dict | None" = None   # effscale.training.progressive: staged image size and regularization

    def __post_init__(self):
        def check(condition, message):
            if not condition:
                raise UserError(f"recipe {message}")

        from effscale.common.checks import BATCH_MAX, EPOCHS_MAX, SEED_MAX, shorten

        # types and ranges first, so that no comparison below meets text or a 5000-digit integer
        for key, high in (("epochs", EPOCHS_MAX), ("batch_size", BATCH_MAX), ("base_batch", BATCH_MAX),
                          ("seed", SEED_MAX)):
            value = getattr(self, key)
            low = 0 if key == "seed" else 1
            check(isinstance(value, int) and not isinstance(value, bool) and low <= value <= high,
                  f"{key} must be {'a positive' if low else 'a non-negative'} integer of at most {high:,}, "
                  f"got {shorten(value)}")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.type in ("float", "float | None") and not (value is None and f.type == "float | None"):
                check(isinstance(value, (int, float)) and not isinstance(value, bool)
                      and (not isinstance(value, int) or value.bit_length() < 1000) and math.isfinite(value),
                      f"{f.name} must be a finite number, got {shorten(value)}")
            elif f.type == "bool":
                check(isinstance(value, bool), f"{f.name} must be true or false, got {shorten(value)}")
        check(self.optimizer in OPTIMIZERS, f"optimizer {self.optimizer!r}: expected one of {', '.join(OPTIMIZERS)}")
        check(self.schedule in SCHEDULES, f"schedule {self.schedule!r}: expected one of {', '.join(SCHEDULES)}")
        check(self.batch_scope in ("per_replica", "global"),
              f"batch_scope {self.batch_scope!r}: expected 'per_replica' or 'global'")
        check(self.learning_rate > 0 and math.isfinite(self.learning_rate), "learning_rate must be positive")
        check(self.warmup_epochs >= 0, "warmup_epochs must be >= 0")
        check(self.decay_epochs > 0 and 0 < self.decay_rate <= 1, "needs decay_epochs > 0 and decay_rate in (0, 1]")
        check(0 <= self.min_learning_rate_ratio < 1, "min_learning_rate_ratio must be in [0, 1)")
        check(0 <= self.label_smoothing < 1, "label_smoothing must be in [0, 1)")
        check(self.weight_decay >= 0, "weight_decay must be >= 0")
        check(self.dropout is None or 0 <= self.dropout < 1, "dropout must be in [0, 1) or None")
        check(0 <= self.drop_connect < 1, "drop_connect must be in [0, 1)")
        check(self.augment in (True, False, "resized-crop", "padded-crop"),
              f"augment must be true, false, 'resized-crop' or 'padded-crop', got {self.augment!r}")
        check(0 < self.bn_momentum < 1, "bn_momentum must be in (0, 1)")
        check(self.bn_epsilon > 0, "bn_epsilon must be positive")
        check(self.ema_decay is None or 0 < self.ema_decay < 1, "ema_decay must be in (0, 1) or None")
        check(self.gradient_clip_norm is None or self.gradient_clip_norm > 0, "gradient_clip_norm must be positive")
        check(0 <= self.momentum < 1 and 0 < self.rmsprop_rho < 1 and self.epsilon > 0,
              "momentum must be in [0, 1), rmsprop_rho in (0, 1) and epsilon positive")
        if self.progressive is not None:
            from effscale.training.progressive import Progressive

            object.__setattr__(self, "progressive", Progressive.from_dict(self.progressive))
            check(self.progressive.stages <= self.epochs,
                  f"progressive learning with {self.progressive.stages} stages needs at least as many epochs, "
                  f"got {self.epochs}")

    # -- serialization --------------------------------------------------------------------
    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["progressive"] = self.progressive.to_dict() if self.progressive is not None else None
        return data

    @classmethod
    def efficientnet(cls, **changes) -> "Recipe":
        """The EfficientNet ImageNet recipe (tensorflow/tpu efficientnet main.py defaults)."""
        base = cls(epochs=350, batch_size=4096, batch_scope="global", optimizer="rmsprop", learning_rate=0.016,
                   base_batch=256, momentum=0.9, rmsprop_rho=0.9, epsilon=1e-3, warmup_epochs=5,
                   schedule="exponential", decay_epochs=2.4, decay_rate=0.97, label_smoothing=0.1,
                   weight_decay=1e-5, drop_connect=0.2, bn_momentum=0.99, ema_decay=0.9999, augment=True)
        return dataclasses.replace(base, **changes)

    # -- what the recipe makes --------------------------------------------------------------
    def peak_learning_rate(self, global_batch: int) -> float:
        """``learning_rate`` scaled linearly from ``base_batch`` to ``global_batch`` images."""
        from effscale.training.strategy import scale_learning_rate

        return scale_learning_rate(self.learning_rate, global_batch, self.base_batch)

    def learning_rate_schedule(self, global_batch: int, steps_per_epoch: int, epochs: int | None = None):
        """A Keras schedule: linear warm-up to the peak, then cosine or exponential decay (see
        :func:`warmup_schedule`).

        >>> schedule = Recipe(learning_rate=0.016, warmup_epochs=1, epochs=3).learning_rate_schedule(256, 4)
        >>> [round(float(schedule(step)), 4) for step in (0, 2, 4, 8, 12)]
        [0.004, 0.01, 0.016, 0.008, 0.0]
        """
        return warmup_schedule(
            peak=self.peak_learning_rate(global_batch), warmup_steps=int(round(self.warmup_epochs * steps_per_epoch)),
            total_steps=max(1, (epochs or self.epochs) * steps_per_epoch), schedule=self.schedule,
            decay_steps=max(1.0, self.decay_epochs * steps_per_epoch), decay_rate=self.decay_rate,
            min_ratio=self.min_learning_rate_ratio)

    def make_optimizer(self, global_batch: int, steps_per_epoch: int, epochs: int | None = None):
        """The Keras optimizer of this recipe, with its schedule, weight decay and EMA."""
        import keras

        common = {"learning_rate": self.learning_rate_schedule(global_batch, steps_per_epoch, epochs),
                  "weight_decay": self.weight_decay or None, "use_ema": self.ema_decay is not None,
                  "ema_momentum": self.ema_decay or 0.99, "global_clipnorm": self.gradient_clip_norm}
        if self.optimizer == "rmsprop":
            return keras.optimizers.RMSprop(rho=self.rmsprop_rho, momentum=self.momentum, epsilon=self.epsilon, **common)
        if self.optimizer == "sgd":
            return keras.optimizers.SGD(momentum=self.momentum, nesterov=True, **common)
        return keras.optimizers.Adam(epsilon=self.epsilon, **common)


def warmup_schedule(peak: float, warmup_steps: int, total_steps: int, schedule: str = "cosine",
                    decay_steps: float = 1.0, decay_rate: float = 0.97, min_ratio: float = 0.0):
    """Keras' own schedules: ``cosine`` is ``keras.optimizers.schedules.CosineDecay`` (to
    ``min_ratio * peak`` at ``total_steps``), ``constant`` the same with ``alpha=1``, and
    ``exponential`` ``ExponentialDecay`` (``decay_rate`` every ``decay_steps``, staircase)
    behind the same warm-up.

    The warm-up is Keras': linear from ``peak / warmup_steps`` at step 0 to ``peak`` at step
    ``warmup_steps``, where the decay starts.

    >>> rates = warmup_schedule(1.0, warmup_steps=4, total_steps=8)
    >>> [round(float(rates(step)), 4) for step in range(9)]
    [0.25, 0.4375, 0.625, 0.8125, 1.0, 0.8536, 0.5, 0.1464, 0.0]
    >>> rates = warmup_schedule(1.0, 2, 10, schedule="exponential", decay_steps=3, decay_rate=0.5)
    >>> [float(rates(step)) for step in (0, 1, 2, 4, 5, 8)]
    [0.5, 0.75, 1.0, 1.0, 0.5, 0.25]
    """
    import keras

    exponential_class = _schedule_classes()
    peak, warmup_steps = float(peak), int(warmup_steps)
    start = peak / warmup_steps if warmup_steps > 0 else peak
    if schedule == "exponential":
        if warmup_steps <= 0:
            return keras.optimizers.schedules.ExponentialDecay(peak, float(decay_steps), float(decay_rate),
                                                               staircase=True)
        return exponential_class(peak, float(decay_steps), float(decay_rate), staircase=True,
                                 warmup_steps=warmup_steps, warmup_start=start)
    return keras.optimizers.schedules.CosineDecay(
        start, decay_steps=max(int(total_steps) - warmup_steps, 1),
        alpha=1.0 if schedule == "constant" else float(min_ratio),
        warmup_target=peak if warmup_steps > 0 else None, warmup_steps=max(warmup_steps, 0))


_SCHEDULE_CLASSES = []


def _schedule_classes():
    """Register (on first use, so importing this module does not import Keras) the one schedule
    Keras lacks, exponential decay after a warm-up, and return it."""
    if _SCHEDULE_CLASSES:
        return _SCHEDULE_CLASSES[0]
    import keras

    @keras.saving.register_keras_serializable(package="effscale")
    class WarmupExponentialDecay(keras.optimizers.schedules.ExponentialDecay):
        """``ExponentialDecay`` counted from ``warmup_steps``, after CosineDecay's linear warm-up
        from ``warmup_start`` to ``initial_learning_rate``."""

        def __init__(self, *args, warmup_steps=0, warmup_start=0.0, **kwargs):
            super().__init__(*args, **kwargs)
            self.warmup_steps, self.warmup_start = int(warmup_steps), float(warmup_start)

        def __call__(self, step):
            from keras import ops

            step = ops.cast(step, "float32")
            ramp = self.warmup_start + (self.initial_learning_rate - self.warmup_start) * step / self.warmup_steps
            decayed = super().__call__(ops.maximum(step - self.warmup_steps, 0.0))
            return ops.where(step < self.warmup_steps, ramp, decayed)

        def get_config(self):
            return {**super().get_config(), "warmup_steps": self.warmup_steps, "warmup_start": self.warmup_start}

    _SCHEDULE_CLASSES.append(WarmupExponentialDecay)
    return WarmupExponentialDecay
