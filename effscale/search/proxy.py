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
effscale.common.errors.UserError: unknown optimizer 'lamb': expected one of sgd, adam, rmsprop
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from effscale.common.errors import UserError
from effscale.common.io import JsonSettings
from effscale.model.scaling import variant_spec

OPTIMIZERS = ("sgd", "adam", "rmsprop")
SCHEDULES = ("constant", "cosine")


class ProxyFailure(RuntimeError):
    """A candidate failed for its own reasons (NaN loss, out of memory): FAILED, search goes on."""


@dataclass(frozen=True)
class ProxySettings(JsonSettings):
    """How each candidate is trained. ``epochs`` may be overridden per trial (Hyperband).

    >>> ProxySettings.from_json(ProxySettings(epochs=2).to_json()).epochs
    2
    >>> ProxySettings.from_dict({"epoch": 2})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    effscale.common.errors.UserError: unknown proxy setting key(s) ['epoch']: expected some of [...]
    """

    _json_name = "proxy setting"

    epochs: int = 1
    batch_size: int = 64
    optimizer: str = "sgd"
    learning_rate: float = 0.05
    momentum: float = 0.9
    bn_momentum: float = 0.9
    dropout: float = 0.0
    seed: int = 0
    schedule: str = "cosine"  # keras CosineDecay from learning_rate to 0 over the run; or "constant"

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
        if self.schedule not in SCHEDULES:
            raise UserError(f"unknown schedule {self.schedule!r}: expected one of {', '.join(SCHEDULES)}")

    def learning_rate_for(self, steps_per_epoch: int | None = None, epochs: int | None = None):
        """The optimizer's learning rate: a number (constant) or a keras ``CosineDecay`` to 0
        over ``epochs`` x ``steps_per_epoch`` steps (cosine needs both)."""
        if self.schedule == "constant":
            return self.learning_rate
        if not steps_per_epoch:
            raise UserError("the cosine schedule needs the number of steps per epoch")
        import keras

        steps = max(1, int(steps_per_epoch) * int(epochs or self.epochs))
        return keras.optimizers.schedules.CosineDecay(self.learning_rate, decay_steps=steps, alpha=0.0)

    def make_optimizer(self, steps_per_epoch: int | None = None, epochs: int | None = None, fused: bool = False):
        """The optimizer; ``fused``: SGD's per-variable update on one kernel
        (:class:`~effscale.training.fused_sgd.FusedSGD`, the same update, less to trace)."""
        import keras

        rate = self.learning_rate_for(steps_per_epoch, epochs)
        if self.optimizer == "sgd" and fused:
            from effscale.training.fused_sgd import FusedSGD

            return FusedSGD(rate, momentum=self.momentum)
        if self.optimizer == "sgd":
            return keras.optimizers.SGD(rate, momentum=self.momentum)
        if self.optimizer == "adam":
            return keras.optimizers.Adam(rate)
        return keras.optimizers.RMSprop(rate, momentum=self.momentum)


def steps_per_epoch(data) -> int:
    """Batches in one pass over ``data.train``."""
    return max(1, math.ceil(data.train_size / max(1, data.batch_size or 1)))


TRIAL_PATHS = ("new", "old")


def trial_path() -> str:
    """Which proxy-training path runs: ``new`` (default) or ``old``, from the environment
    variable ``EFFSCALE_TRIAL_PATH``. The old path is kept so that a benchmark can measure
    before and after side by side (benchmarks/trial_cost.py); both give the same results.

    >>> import os
    >>> os.environ.get("EFFSCALE_TRIAL_PATH", "new") in TRIAL_PATHS and trial_path() in TRIAL_PATHS
    True
    """
    value = os.environ.get("EFFSCALE_TRIAL_PATH", "new").strip().lower() or "new"
    if value not in TRIAL_PATHS:
        raise UserError(f"EFFSCALE_TRIAL_PATH={value!r}: expected one of {', '.join(TRIAL_PATHS)}")
    return value


def reshuffled(data, seed: int):
    """``data`` with its training split in another seeded order (the cached images and the
    validation split stay as they are): what a second training seed sees. Data held in memory
    is reshuffled by its indices, in the same order as its images would be."""
    import dataclasses

    import tensorflow as tf

    buffer = min(data.train_size, 10_000)
    if data.memory:
        order = data.memory["order"].shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
        train = data.memory["train"].batched(order, data.batch_size)
    else:
        train = data.train.unbatch().shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
        train = train.batch(data.batch_size)
    train = train.apply(tf.data.experimental.assert_cardinality(steps_per_epoch(data)))
    return dataclasses.replace(data, train=train.prefetch(tf.data.AUTOTUNE))


def _is_oom(error: BaseException) -> bool:
    if isinstance(error, MemoryError):
        return True
    try:
        import tensorflow as tf

        return isinstance(error, tf.errors.ResourceExhaustedError)
    except ImportError:  # pragma: no cover
        return False


def prebuild(model, element_spec) -> None:
    """Create a compiled model's optimizer and metric variables before its first ``fit``.

    Without a distribution strategy Keras creates them while tracing the first training step,
    and a ``tf.function`` that creates variables is traced twice: about half of the first step's
    time on a proxy-sized model (benchmarks/trial_cost.py). The step computes the same.
    """
    build = getattr(model, "_symbolic_build", None)  # Keras 3's own pre-trace build (private)
    if build is None:  # pragma: no cover - another Keras: build the optimizer at least
        model.optimizer.build(model.trainable_variables)
        return
    build(data_batch=tuple(element_spec))


def _phase_clock(timings: dict):
    """A Keras callback adding the seconds of a ``fit``'s phases to ``timings``: ``first_step``
    (the first training batch: tracing and the step), ``steps`` (the other batches) and
    ``evaluation`` (the validation pass, its tracing included)."""
    import time

    import keras

    class PhaseClock(keras.callbacks.Callback):
        def _add(self, key, since):
            now = time.perf_counter()
            timings[key] = timings.get(key, 0.0) + now - since
            return now

        def on_train_begin(self, logs=None):
            self.first, self.mark = True, time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.mark = self._add("first_step" if self.first else "steps", self.mark)
            self.first = False

        def on_test_begin(self, logs=None):
            self.mark = time.perf_counter()

        def on_test_end(self, logs=None):
            self.mark = self._add("evaluation", self.mark)

        def on_epoch_begin(self, epoch, logs=None):
            self.mark = time.perf_counter()

    return PhaseClock()


def proxy_train(genotype, variant, data, settings: ProxySettings = ProxySettings(), epochs: int | None = None,
                callbacks: list | None = None, verbose: int = 0, reuse: dict | None = None,
                timings: dict | None = None) -> dict:
    """Build ``genotype`` at ``variant`` for ``data.num_classes`` classes, train it on
    ``data.train`` and return ``{"accuracy", "val_loss", "loss", "epochs", "parameters"}``
    (accuracy: validation accuracy after the last epoch).

    ``reuse``: a dict kept between calls that differ only in ``settings.seed`` (another seed
    of the same candidate): the compiled model is kept and gets the new seed's fresh weights
    and a zeroed optimizer, so the traced training step is reused instead of traced again
    (several seconds of every training on a CPU).

    ``timings``: a dict that gets the seconds of each phase added (``build``, ``compile``,
    ``first_step``, ``steps``, ``evaluation``, ``fit_other``), for benchmarks/trial_cost.py."""
    import dataclasses
    import time

    import keras
    import numpy as np

    from effscale.model.builder import ModelOptions, build

    epochs = settings.epochs if epochs is None else int(epochs)
    new_path = trial_path() == "new"  # the new path: data in memory, prebuilt, fused batch norm and SGD
    keras.utils.set_random_seed(settings.seed)
    key = (genotype.encode(), variant_spec(variant), dataclasses.replace(settings, seed=0), epochs, steps_per_epoch(data),
           data.num_classes)
    clock = {} if timings is None else timings
    started = time.perf_counter()
    try:
        model = build(genotype, variant, classes=data.num_classes,
                      options=ModelOptions(bn_momentum=settings.bn_momentum, dropout=settings.dropout,
                                           fused_batch_norm=new_path))
        built = time.perf_counter()
        clock["build"] = clock.get("build", 0.0) + built - started
        if reuse is not None and reuse.get("key") == key:
            reuse["model"].set_weights(model.get_weights())
            model = reuse["model"]
            for variable in model.optimizer.variables:
                if "learning_rate" not in variable.path:  # a constant rate is a variable too: keep it
                    variable.assign(np.zeros(variable.shape, variable.dtype))
        else:
            model.compile(settings.make_optimizer(steps_per_epoch(data), epochs, fused=new_path),
                          "sparse_categorical_crossentropy", metrics=["accuracy"], jit_compile=False)
            if new_path:
                prebuild(model, data.train.element_spec)
            if reuse is not None:
                reuse.clear()
                reuse.update(key=key, model=model)
        # Validation only after the last epoch: the accuracy returned is the last one, and on
        # small proxies evaluating every epoch costs as much as training.
        fitting = time.perf_counter()
        clock["compile"] = clock.get("compile", 0.0) + fitting - built
        before = sum(clock.get(k, 0.0) for k in ("first_step", "steps", "evaluation"))
        history = model.fit(data.train, validation_data=data.validation, epochs=epochs, verbose=verbose,
                            validation_freq=epochs, shuffle=False,  # the dataset shuffles itself
                            callbacks=[keras.callbacks.TerminateOnNaN(), *(callbacks or []),
                                       *([_phase_clock(clock)] if timings is not None else [])])
        if timings is not None:
            inside = sum(clock.get(k, 0.0) for k in ("first_step", "steps", "evaluation")) - before
            clock["fit_other"] = clock.get("fit_other", 0.0) + time.perf_counter() - fitting - inside
    except Exception as error:  # noqa: BLE001 - only out-of-memory becomes a trial failure
        if reuse is not None:
            reuse.clear()
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


# -- proxy files: what `effscale proxy` recommends, `effscale search --proxy FILE` reads ----------------
PROXY_FILE_KIND = "effscale-proxy"


@dataclass(frozen=True)
class ProxyTaskFile:
    """A proxy task: the training settings and the data/model reductions they run at."""

    settings: ProxySettings
    resolution: int = 0          # 0: the baseline's own, at most 64
    width: float = 1.0
    train_fraction: float = 1.0
    evidence: dict | None = None  # what the check measured, for the record


def write_proxy_file(path: str, settings: ProxySettings, resolution: int = 0, width: float = 1.0,
                     train_fraction: float = 1.0, dataset: str = "", evidence: dict | None = None) -> None:
    """Write a proxy file (JSON, atomically).

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "proxy.json")
    >>> write_proxy_file(path, ProxySettings(epochs=2, schedule="cosine"), resolution=16, train_fraction=0.5)
    >>> task = read_proxy_file(path)
    >>> task.settings.epochs, task.settings.schedule, task.resolution, task.train_fraction
    (2, 'cosine', 16, 0.5)
    """
    from effscale.common.migrations import write_state

    write_state(path, {"kind": PROXY_FILE_KIND, "settings": settings.to_dict(), "resolution": int(resolution),
                      "width": float(width), "train_fraction": float(train_fraction), "dataset": dataset,
                      "evidence": evidence or {}})


def read_proxy_file(path) -> ProxyTaskFile:
    """Read and validate a proxy file; any problem is one :class:`UserError` naming the file."""
    from effscale.common.io import read_json
    from effscale.common.migrations import current

    try:
        data = read_json(path)
    except OSError as error:
        raise UserError(f"proxy file {path!r}: {error.strerror or error}") from None
    except (ValueError, RecursionError):  # RecursionError: nesting thousands of levels deep
        raise UserError(f"proxy file {path!r} is not JSON (or nests too deep)") from None
    if not isinstance(data, dict) or data.get("kind") != PROXY_FILE_KIND:
        raise UserError(f"proxy file {path!r} is not an effscale proxy file (written by `effscale proxy`)")
    data = current(data, os.fspath(path), "proxy")
    try:
        settings = ProxySettings.from_dict({k: v for k, v in data["settings"].items() if k != "seed"})
        resolution, width, fraction = int(data["resolution"]), float(data["width"]), float(data["train_fraction"])
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as error:  # Overflow: Infinity
        raise UserError(f"proxy file {path!r}: missing or bad field ({str(error).splitlines()[0][:120]})") from None
    except UserError as error:
        raise UserError(f"proxy file {path!r}: {error}") from None
    if not (resolution == 0 or 8 <= resolution <= 1024) or not 0 < width <= 8 or not 0 < fraction <= 1:
        raise UserError(f"proxy file {path!r}: resolution, width or train_fraction out of range")
    return ProxyTaskFile(settings, resolution, width, fraction, data.get("evidence"))
