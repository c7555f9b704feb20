"""Differentiable architecture search: one supernet, architecture logits learned by gradient.

:func:`run_differentiable_search` trains a :func:`~effscale.search.oneshot.supernet.Supernet` over a
:class:`~effscale.search.space.SearchSpace` with first-order DARTS alternating updates (Liu et al.,
arXiv 1806.09055): on each training batch the shared weights take an SGD step, then on a
validation batch the architecture logits (one vector per hyperparameter ``stage{i}/{choice}``,
exactly the space's names and values) take an Adam step on

    CE(validation) + cost_weight * |log(E[cost] / target)|      (constraint "soft")
    CE(validation) + cost_weight * max(0, log(E[cost] / target))  (constraint "hard")

The soft form pulls the expected cost to the target from both sides (TuNAS's absolute reward,
in log space), the hard form only pushes down from above it. Both passes sample the sub-network
with straight-through Gumbel-softmax (FBNet / ProxylessNAS), so memory is one max-size path per
layer. E[cost] (multiply-adds or parameters at the design variant, as every other oracle
counts them) is exact, filters and block open included
(:class:`~effscale.search.oneshot.expected_cost.CostTable`). The supernet searches
:func:`~effscale.search.oneshot.supernet.supernet_space` of the space: every choice, less the block types
that are not mixable (said in one line). The derived genotype is the argmax of every logit vector.

State, in ``directory`` (every file written atomically, after every epoch)::

    checkpoint.npz   weights, both optimizers' state, logits, Gumbel RNG, epoch and history
    logits.json      per epoch: softmax probabilities, logits, losses, E[cost], the argmax values
    logits.png       probability of each value per hyperparameter against the epoch

A killed search rerun with the same arguments resumes after its last saved epoch.

>>> from effscale.search.space import SearchSpace
"""

from __future__ import annotations

import heapq
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from effscale.common.errors import UserError
from effscale.common.io import atomic_path, plain_json
from effscale.common.migrations import read_state, write_state
from effscale.model.scaling import Variant, variant_spec
from effscale.search.objectives import Reward
from effscale.search.proxy import ProxySettings
from effscale.search.space import SearchSpace
from effscale.search.oneshot.expected_cost import CostTable
from effscale.search.oneshot.supernet import check_space, complete_values, supernet_space

CHECKPOINT = "checkpoint.npz"
LOGITS = "logits.json"
PLOT = "logits.png"


def check_supported(space: SearchSpace, cost: str, distributed: bool = False) -> None:
    """UserError for what the differentiable search cannot do (checked before anything runs): a
    reference stage whose block type is not mixable, a latency cost, several processes. Open
    choices it cannot relax are closed instead, with one line (:func:`~effscale.search.oneshot.supernet.supernet_space`).

    >>> check_supported(SearchSpace("tiny", open=("kernel",)), "latency")
    Traceback (most recent call last):
    ...
    effscale.common.errors.UserError: differentiable search: cost 'latency' is not supported (use macs or params)
    """
    check_space(space)
    if cost not in ("macs", "params"):
        raise UserError(f"differentiable search: cost {cost!r} is not supported (use macs or params)")
    if distributed:
        raise UserError("differentiable search runs in one process: unset KERASTUNER_TUNER_ID / "
                        "KERASTUNER_ORACLE_PORT")


@dataclass
class DifferentiableResult:
    """What a differentiable search found. ``history``: one dict per epoch (see :func:`load_logits`)."""

    genotype: object
    values: dict
    history: list
    probabilities: dict
    epochs_run: int = 0          # epochs trained by this call (0 when it only reloaded)
    resumed_from: int = 0        # the saved epoch it started after
    directory: str = ""
    space: SearchSpace | None = field(default=None, repr=False)     # the space searched
    searched: SearchSpace | None = field(default=None, repr=False)  # its supernet_space

    def top_values(self, k: int) -> list[dict]:
        """The ``k`` most probable distinct architectures under the final probabilities, best
        first (the first is the argmax, :attr:`values`), as values of :attr:`space`."""
        return top_values(self.searched or self.space, self.probabilities, k, self.space)


def top_values(space: SearchSpace, probabilities: dict, k: int, full: SearchSpace | None = None) -> list[dict]:
    """The ``k`` most probable distinct value dicts of independent factors (best-first over index
    vectors; inactive choices left out). ``full``: the space ``space`` is a
    :func:`~effscale.search.oneshot.supernet.supernet_space` of, whose values to return.

    >>> space = SearchSpace("tiny", open=("kernel", "se"), stages=(2,))
    >>> top_values(space, {"stage2/kernel": [0.3, 0.7], "stage2/se": [0.9, 0.1]}, 2)
    [{'stage2/kernel': 5, 'stage2/se': 0.0}, {'stage2/kernel': 3, 'stage2/se': 0.0}]
    """
    full = full or space
    names = list(space.names)
    order = [np.argsort(-np.asarray(probabilities[n], float), kind="stable") for n in names]
    logp = [np.log(np.maximum(np.asarray(probabilities[n], float)[o], 1e-30)) for n, o in zip(names, order)]

    def score(index):
        return -sum(lp[i] for lp, i in zip(logp, index))

    start = (0,) * len(names)
    heap, seen, out = [(score(start), start)], {start}, []
    while heap and len(out) < k:
        _, index = heapq.heappop(heap)
        values = complete_values(full, space, {n: space.choices(n)[int(o[i])] for n, o, i in zip(names, order, index)})
        if values not in out:  # index vectors that differ only in inactive choices
            out.append(values)
        for axis in range(len(names)):
            if index[axis] + 1 < len(order[axis]):
                child = index[:axis] + (index[axis] + 1,) + index[axis + 1:]
                if child not in seen:
                    seen.add(child)
                    heapq.heappush(heap, (score(child), child))
    return out


def argmax_values(space: SearchSpace, probabilities: dict, full: SearchSpace | None = None) -> dict:
    """The most probable value of every active choice (as values of ``full``, see :func:`top_values`).

    >>> space = SearchSpace("tiny", open=("block", "expand"), stages=(2,))
    >>> argmax_values(space, {"stage2/block": [0.2, 0.1, 0.7], "stage2/expand": [0.4, 0.3, 0.2, 0.1]})
    {'stage2/block': 'dsconv'}
    """
    values = {n: space.choices(n)[int(np.argmax(probabilities[n]))] for n in space.names}
    return complete_values(full or space, space, values)


def _config(space, variant, reward, settings, seed, options) -> dict:
    return plain_json({"space": space.to_dict(), "variant": variant_spec(variant), "reward": reward.to_dict(),
                       "proxy": settings.to_dict(), "seed": seed, **options})


def load_logits(path: str) -> list[dict]:
    """The per-epoch records of a search: ``path`` is ``logits.json`` or its directory.

    Each record: ``epoch``, ``probabilities`` and ``logits`` (name -> list, in the space's
    choice order), ``choices`` (name -> values), ``argmax`` (name -> value), ``loss``,
    ``val_loss``, ``val_accuracy``, ``expected_cost``, ``target``, ``seconds``.

    >>> load_logits("/nonexistent")
    Traceback (most recent call last):
    ...
    effscale.common.errors.UserError: no differentiable search logits at '/nonexistent/logits.json'
    """
    path = os.fspath(path)
    if not path.endswith(".json"):
        path = os.path.join(path, LOGITS)
    if not os.path.isfile(path):
        raise UserError(f"no differentiable search logits at {path!r}")
    return read_state(path, "supernet")["epochs"]


def plot_logits(source, out_png: str) -> str:
    """Plot the probability of every value of every hyperparameter against the epoch.

    ``source``: a ``logits.json`` path, its directory, or a history list. Returns ``out_png``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history = source if isinstance(source, list) else load_logits(source)
    if not history:
        raise UserError("no epochs to plot")
    names = list(history[0]["probabilities"])
    columns = min(3, len(names))
    rows = math.ceil(len(names) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4 * columns, 2.6 * rows), squeeze=False)
    epochs = [0] + [h["epoch"] for h in history]
    for axis, name in zip(axes.flat, names):
        choices = history[0]["choices"][name]
        for i, value in enumerate(choices):
            probs = [1.0 / len(choices)] + [h["probabilities"][name][i] for h in history]
            axis.plot(epochs, probs, marker="o", label=str(value))
        axis.set_title(name, fontsize=9)
        axis.set_ylim(0, 1)
        axis.set_xlabel("epoch")
        axis.legend(fontsize=7)
    for axis in list(axes.flat)[len(names):]:
        axis.axis("off")
    figure.tight_layout()
    with atomic_path(out_png) as temporary:
        figure.savefig(temporary, dpi=80)
    plt.close(figure)
    return out_png


def _checkpoint_variables(model, weight_optimizer, arch_optimizer, logits, generator) -> list:
    return [*model.weights, *weight_optimizer.variables, *arch_optimizer.variables,
            *logits.values(), generator.state]


def _save_checkpoint(path, variables, meta) -> None:
    arrays = {f"v{i}": np.asarray(v.numpy()) for i, v in enumerate(variables)}
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as handle:
            np.savez(handle, meta=np.array(json.dumps(meta)), **arrays)
            handle.flush()
            os.fsync(handle.fileno())


def _read_meta(path) -> dict | None:
    if not os.path.isfile(path):
        return None
    try:
        with np.load(path) as archive:
            return json.loads(str(archive["meta"]))
    except (OSError, ValueError, KeyError) as error:
        raise UserError(f"{path} does not load ({type(error).__name__}); delete it to start over") from None


@dataclass(frozen=True)
class SupernetOptions:
    """How the supernet is trained: ``epochs``, the logits' Adam learning rate
    ``arch_learning_rate`` from epoch ``warmup_epochs`` on, the weight of the cost term
    ``cost_weight`` and the Gumbel-softmax ``temperature``.

    >>> SupernetOptions(epochs=2, cost_weight=3.0).temperature
    1.0
    >>> SupernetOptions(epochs=2, warmup_epochs=2)
    Traceback (most recent call last):
    ...
    effscale.common.errors.UserError: warmup epochs must be an integer in 0..1, got 2
    """

    epochs: int = 3
    arch_learning_rate: float = 0.01
    cost_weight: float = 1.0
    warmup_epochs: int = 0
    temperature: float = 1.0

    def __post_init__(self):
        epochs, warmup_epochs = self.epochs, self.warmup_epochs
        if not (isinstance(epochs, int) and 1 <= epochs <= 1000):
            raise UserError(f"supernet epochs must be an integer in 1..1000, got {epochs!r}")
        if not (isinstance(warmup_epochs, int) and 0 <= warmup_epochs < epochs):
            raise UserError(f"warmup epochs must be an integer in 0..{epochs - 1}, got {warmup_epochs!r}")
        for name in ("arch_learning_rate", "cost_weight", "temperature"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise UserError(f"{name} must be a non-negative number, got {value!r}")
        if self.temperature <= 0:
            raise UserError(f"temperature must be positive, got {self.temperature!r}")


def run_differentiable_search(space: SearchSpace, data, variant: "str | Variant", reward: "Reward | dict",
                              supernet: SupernetOptions | None = None, directory: str = "supernet", seed: int = 0,
                              settings: ProxySettings | None = None, verbose: int = 0,
                              stream=None) -> DifferentiableResult:
    """Search ``space`` with a supernet trained on ``data`` (a :class:`~effscale.data.pipeline.DataSplits`)
    at ``variant`` (e.g. ``"w=0.25,d=1,r=8"`` or a :class:`~effscale.model.scaling.Variant`; saved as its
    :func:`~effscale.model.scaling.variant_spec`) as ``supernet`` (:class:`SupernetOptions`) says, steering the expected
    ``reward.cost`` (macs or params, at the design variant) to ``reward.target``.

    Weights: ``settings`` (batch size is the data's; optimizer SGD at its learning rate and
    momentum; BN momentum). Logits: Adam at the supernet's ``arch_learning_rate`` from epoch
    ``warmup_epochs`` on. Rerunning with the same arguments resumes; a larger ``epochs``
    continues. Returns a :class:`DifferentiableResult` (``.genotype``, ``.values``, ``.history``).

    Example (a few seconds)::

        from effscale.data import DataSpec, load_data
        space = SearchSpace("tiny", open=("kernel", "se"), stages=(2, 3))
        result = run_differentiable_search(space, load_data(DataSpec("digits", resolution=8)), "w=0.25,d=1,r=8",
                                           Reward("macs", 2e6), SupernetOptions(epochs=1), directory="supernet")
        result.genotype, load_logits("supernet")[-1]["probabilities"]
    """
    stream = stream or sys.stdout
    settings = settings or ProxySettings(seed=seed)
    reward = reward if isinstance(reward, Reward) else Reward.from_dict(reward)
    check_supported(space, reward.cost)
    supernet = supernet or SupernetOptions()
    epochs, warmup_epochs = supernet.epochs, supernet.warmup_epochs
    options = {"arch_learning_rate": float(supernet.arch_learning_rate), "cost_weight": float(supernet.cost_weight),
               "warmup_epochs": warmup_epochs, "temperature": float(supernet.temperature)}
    config = _config(space, variant, reward, settings, seed, options)
    directory = os.path.abspath(os.fspath(directory))
    os.makedirs(directory, exist_ok=True)
    checkpoint = os.path.join(directory, CHECKPOINT)
    meta = _read_meta(checkpoint)
    if meta is not None and meta["config"] != config:
        raise UserError(f"{directory} holds a different differentiable search; use a new directory")
    history = meta["history"] if meta else []
    start = meta["epoch"] if meta else 0

    def say(text):
        if verbose:
            print(text, file=stream, flush=True)

    searched, closed = supernet_space(space)
    if closed:
        say(closed)

    def result(run: int) -> DifferentiableResult:
        probabilities = history[-1]["probabilities"]
        values = argmax_values(searched, probabilities, space)
        return DifferentiableResult(space.to_genotype(values), values, history, probabilities, run, start,
                                    directory, space, searched)

    if start >= epochs:
        _write_views(directory, history)
        say(f"supernet: {start} epoch(s) already done in {directory}")
        return result(0)
    if start:
        say(f"supernet: resuming {directory} after epoch {start}")
    trainer = _trainer(searched, data, variant, reward, settings, seed, options)
    if meta is not None:
        trainer.restore(checkpoint, meta)
    for epoch in range(start, epochs):
        began = time.monotonic()
        record = trainer.epoch(search_arch=epoch >= warmup_epochs)
        record.update(epoch=epoch + 1, seconds=round(time.monotonic() - began, 3))
        history.append(record)
        trainer.save(checkpoint, {"config": config, "epoch": epoch + 1, "history": history})
        _write_views(directory, history)
        say(f"supernet epoch {epoch + 1}/{epochs}: loss {record['loss']:.4f} val_loss {record['val_loss']:.4f} "
            f"val_acc {record['val_accuracy']:.4f} E[{reward.cost}] {record['expected_cost']:.4g} "
            f"(target {reward.target:.4g}) [{record['seconds']:.1f}s] argmax {record['argmax']}")
    return result(epochs - start)


def _write_views(directory: str, history: list) -> None:
    write_state(os.path.join(directory, LOGITS), {"epochs": history})
    plot_logits(history, os.path.join(directory, PLOT))


_TRAINERS: dict = {}


def _trainer(space, data, variant, reward, settings, seed, options) -> "_Trainer":
    """A fresh trainer, or a cached one reset to its initial state: tracing the supernet's steps
    costs far more than an epoch on small data, and a target or cost weight change needs no
    retrace (both are variables in the traced steps)."""
    key = json.dumps([space.to_dict(), variant_spec(variant), reward.cost, reward.constraint, settings.to_dict(), seed,
                      data.num_classes, {k: v for k, v in options.items() if k != "cost_weight"}], sort_keys=True)
    trainer = _TRAINERS.pop(key, None)
    if trainer is None:
        trainer = _Trainer(space, data, variant, reward, settings, seed, options)
    else:
        trainer.reset(data, reward, options)
    _TRAINERS[key] = trainer
    while len(_TRAINERS) > 2:
        _TRAINERS.pop(next(iter(_TRAINERS)))
    return trainer


class _Trainer:
    """The supernet, both optimizers, the logits and the Gumbel generator; one epoch at a time."""

    def __init__(self, space, data, variant, reward, settings, seed, options):
        import keras
        import tensorflow as tf

        from effscale.search.oneshot.supernet import Supernet, sample_weights

        keras.utils.set_random_seed(seed)
        self.space, self.data, self.reward, self.options = space, data, reward, options
        self.table = CostTable(space, data.num_classes, reward.cost)
        self.model = Supernet(space, variant, data.num_classes, bn_momentum=settings.bn_momentum)
        self.logits = {n: tf.Variable(tf.zeros(len(space.choices(n))), name=n.replace("/", "_"))
                       for n in space.names}
        self.generator = tf.random.Generator.from_seed(seed)
        self.weight_optimizer = keras.optimizers.SGD(settings.learning_rate, momentum=settings.momentum)
        self.arch_optimizer = keras.optimizers.Adam(options["arch_learning_rate"])
        images, _ = next(iter(data.train))
        self.model(images[:1], sample_weights(self.logits, None))
        self.weight_optimizer.build(self.model.trainable_variables)
        self.arch_optimizer.build(list(self.logits.values()))
        loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        temperature, one_sided = options["temperature"], reward.constraint == "hard"
        self.target = tf.Variable(float(reward.target), trainable=False, name="cost_target")
        self.cost_weight = tf.Variable(float(options["cost_weight"]), trainable=False, name="cost_weight")
        target, weight = self.target, self.cost_weight
        self.initial = [v.numpy() for v in self._variables()]

        def weight_step(x, y):
            arch = sample_weights(self.logits, self.generator, temperature)
            with tf.GradientTape() as tape:
                loss = loss_fn(y, self.model(x, arch, training=True))
            variables = self.model.trainable_variables
            self.weight_optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
            return loss

        def arch_step(x, y):
            variables = list(self.logits.values())
            with tf.GradientTape() as tape:
                arch = sample_weights(self.logits, self.generator, temperature)
                ce = loss_fn(y, self.model(x, arch, training=True))
                ratio = tf.math.log(self.expected_cost() / target)
                penalty = tf.nn.relu(ratio) if one_sided else tf.abs(ratio)
                loss = ce + weight * penalty
            self.arch_optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
            return ce

        def evaluate(x, y):
            logits = self.model(x, sample_weights(self.logits, None), training=False)
            correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), y), tf.float32))
            return loss_fn(y, logits) * tf.cast(tf.shape(y)[0], tf.float32), correct

        # One trace per step whatever the batch size (a partial last batch would retrace).
        images, labels = next(iter(data.train))
        signature = [tf.TensorSpec([None, *images.shape[1:]], images.dtype), tf.TensorSpec([None], labels.dtype)]
        self.weight_step, self.arch_step, self.evaluate = (
            tf.function(step, input_signature=signature, jit_compile=False, autograph=False)
            for step in (weight_step, arch_step, evaluate))

    def probabilities(self):
        import tensorflow as tf

        return {n: tf.nn.softmax(v) for n, v in self.logits.items()}

    def expected_cost(self):
        return self.table.expected(self.probabilities())

    def epoch(self, search_arch: bool) -> dict:
        validation = iter(self.data.validation.repeat())
        losses = []
        for x, y in self.data.train:
            losses.append(float(self.weight_step(x, y)))
            if search_arch:
                vx, vy = next(validation)
                self.arch_step(vx, vy)
        total_loss = correct = count = 0.0
        for x, y in self.data.validation:
            loss, right = self.evaluate(x, y)
            total_loss, correct, count = total_loss + float(loss), correct + float(right), count + int(y.shape[0])
        probabilities = {n: [float(p) for p in v.numpy()] for n, v in self.probabilities().items()}
        loss = float(np.mean(losses))
        if not (math.isfinite(loss) and math.isfinite(total_loss)):
            raise UserError("differentiable search: the supernet's loss went NaN; lower the learning rate")
        return {"probabilities": probabilities,
                "logits": {n: [float(x) for x in v.numpy()] for n, v in self.logits.items()},
                "choices": {n: list(self.space.choices(n)) for n in self.space.names},
                "argmax": argmax_values(self.space, probabilities), "loss": loss,
                "val_loss": total_loss / count, "val_accuracy": correct / count,
                "expected_cost": float(self.expected_cost()), "target": float(self.reward.target)}

    def reset(self, data, reward, options) -> None:
        """Back to the state right after construction, for a new search with the same graph."""
        self.data, self.reward, self.options = data, reward, options
        for variable, value in zip(self._variables(), self.initial):
            variable.assign(value)
        self.target.assign(float(reward.target))
        self.cost_weight.assign(float(options["cost_weight"]))

    def _variables(self):
        return _checkpoint_variables(self.model, self.weight_optimizer, self.arch_optimizer, self.logits,
                                     self.generator)

    def save(self, path, meta) -> None:
        _save_checkpoint(path, self._variables(), meta)

    def restore(self, path, meta) -> None:
        variables = self._variables()
        with np.load(path) as archive:
            if len(archive.files) - 1 != len(variables):
                raise UserError(f"{path} does not match this supernet; delete it to start over")
            for i, variable in enumerate(variables):
                variable.assign(archive[f"v{i}"])

