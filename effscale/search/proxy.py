"""Proxy training: a few epochs of a candidate at a reduced width and resolution, settings chosen
so that the accuracy it reports means something.

Short runs need BatchNormalization momentum 0.9 (with keras's 0.99 the moving statistics do not
converge in a few hundred steps and validation accuracy stays at chance; measured on the bundled
digits, see docs/training.md).
XLA is off (on CPU it compiles slowly and runs slower). A run whose loss goes NaN, or that runs
out of memory, raises :class:`ProxyFailure` with the reason; the search marks the trial FAILED.

>>> ProxySettings(epochs=3).bn_momentum
0.9
>>> ProxySettings(optimizer="lamb")
Traceback (most recent call last):
...
effscale.errors.UserError: unknown optimizer 'lamb': expected one of sgd, adam, rmsprop
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from effscale.errors import UserError

OPTIMIZERS = ("sgd", "adam", "rmsprop")


class ProxyFailure(RuntimeError):
    """A candidate failed for its own reasons (NaN loss, out of memory): FAILED, search goes on."""


@dataclass(frozen=True)
class ProxySettings:
    """How each candidate is trained. ``epochs`` may be overridden per trial (Hyperband)."""

    epochs: int = 1
    batch_size: int = 64
    optimizer: str = "sgd"
    learning_rate: float = 0.05
    momentum: float = 0.9
    bn_momentum: float = 0.9
    dropout: float = 0.0
    seed: int = 0

    def __post_init__(self):
        if not (isinstance(self.epochs, int) and 1 <= self.epochs <= 1000):
            raise UserError(f"epochs must be an integer in 1..1000, got {self.epochs!r}")
        if not (isinstance(self.batch_size, int) and 1 <= self.batch_size <= 65536):
            raise UserError(f"batch size must be a positive integer, got {self.batch_size!r}")
        if self.optimizer not in OPTIMIZERS:
            raise UserError(f"unknown optimizer {self.optimizer!r}: expected one of {', '.join(OPTIMIZERS)}")
        if not (isinstance(self.learning_rate, (int, float)) and 0 < self.learning_rate < 10):
            raise UserError(f"learning rate must be in (0, 10), got {self.learning_rate!r}")
        if not 0 < self.bn_momentum < 1:
            raise UserError(f"bn_momentum must be in (0, 1), got {self.bn_momentum!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data) -> "ProxySettings":
        return cls(**data)

    def make_optimizer(self):
        import keras

        if self.optimizer == "sgd":
            return keras.optimizers.SGD(self.learning_rate, momentum=self.momentum)
        if self.optimizer == "adam":
            return keras.optimizers.Adam(self.learning_rate)
        return keras.optimizers.RMSprop(self.learning_rate, momentum=self.momentum)


def _is_oom(error: BaseException) -> bool:
    if isinstance(error, MemoryError):
        return True
    try:
        import tensorflow as tf

        return isinstance(error, tf.errors.ResourceExhaustedError)
    except ImportError:  # pragma: no cover
        return False


def proxy_train(genotype, variant, data, settings: ProxySettings = ProxySettings(), epochs: int | None = None,
                callbacks: list | None = None, verbose: int = 0) -> dict:
    """Build ``genotype`` at ``variant`` for ``data.num_classes`` classes, train it on
    ``data.train`` and return ``{"accuracy", "val_loss", "loss", "epochs", "parameters"}``
    (accuracy: validation accuracy after the last epoch)."""
    import keras

    from effscale.builder import build

    epochs = settings.epochs if epochs is None else int(epochs)
    keras.utils.set_random_seed(settings.seed)
    try:
        model = build(genotype, variant, classes=data.num_classes, bn_momentum=settings.bn_momentum,
                      dropout=settings.dropout)
        model.compile(settings.make_optimizer(), "sparse_categorical_crossentropy", metrics=["accuracy"],
                      jit_compile=False)
        history = model.fit(data.train, validation_data=data.validation, epochs=epochs, verbose=verbose,
                            callbacks=[keras.callbacks.TerminateOnNaN(), *(callbacks or [])])
    except Exception as error:  # noqa: BLE001 - only out-of-memory becomes a trial failure
        if _is_oom(error):
            raise ProxyFailure(f"out of memory: {str(error).splitlines()[0][:200]}") from error
        raise
    logs = history.history
    losses = logs.get("loss", [])
    if not losses or any(not math.isfinite(v) for v in losses) or \
            any(not math.isfinite(v) for v in logs.get("val_loss", [])):
        raise ProxyFailure(f"NaN loss after {len(losses)} epoch(s)")
    return {"accuracy": float(logs["val_accuracy"][-1]), "val_loss": float(logs["val_loss"][-1]),
            "loss": float(losses[-1]), "epochs": len(losses), "parameters": int(model.count_params())}
