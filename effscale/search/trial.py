"""What one trial does, independent of Keras Tuner (:class:`TrialRunner`: values -> genotype ->
limits -> proxy training -> metrics), and the ``keras_tuner.HyperModel`` over a search space
(:func:`SearchHyperModel`) for Keras Tuner's own tuners."""

from __future__ import annotations

import math
import os

from effscale.data.spec import DataSpec
from effscale.model.genotype import Genotype
from effscale.model.scaling import Variant
from effscale.search.objectives import OBJECTIVE, Limits, Reward, analytic_costs, design_variant
from effscale.search.proxy import ProxySettings
from effscale.search.space import SearchSpace


class Rejected(Exception):
    """A candidate over a hard limit."""


class TrialRunner:
    """What one trial does, independent of Keras Tuner: values -> genotype -> limits -> proxy
    training -> metrics."""

    heartbeat_s = 2.5  # how often a distributed worker's running trial reports (assemble() sets it)

    def __init__(self, space: SearchSpace, reward: Reward, limits: Limits, settings: ProxySettings,
                 data: DataSpec, width: float, depth: float, latency: dict | None = None, seeds: int = 1,
                 project_dir: str | None = None):
        """``data``: the proxy's data (its resolution is the candidates'); ``width`` / ``depth``: the
        proxy variant's multipliers; ``project_dir``: where measured latencies (``latency/``) and
        finished trainings (``trainings/``) are kept (None: nothing kept)."""
        self.space, self.reward, self.limits, self.settings = space, reward, limits, settings
        self.data_spec, self.width, self.depth = data, width, depth
        self.latency = dict(latency or {})
        self.latency_dir = os.path.join(project_dir, "latency") if project_dir else None
        self.trainings_dir = os.path.join(project_dir, "trainings") if project_dir else None
        self.seeds = seeds
        self._data = None
        self._augmented = None
        # (epochs, augmentation): trainings for these epochs (a multi-fidelity search's top rung,
        # the members' final schedule) see augmented images; assemble() sets it
        self.top_rung: tuple[int, str] | None = None
        self._reuse: dict = {}  # the last compiled model: another seed of it reuses its traced step
        self.extra_metrics = None  # optional: values -> dict of more metrics for the trial
        self.timings = None  # optional dict: seconds per phase of every training (benchmarks/trial_cost.py)

    @property
    def resolution(self) -> int:
        return self.data_spec.resolution

    @property
    def train_fraction(self) -> float | None:
        return self.data_spec.train_fraction

    @property
    def variant(self) -> Variant:
        """The proxy variant every candidate trains at (``variant_spec`` of it: the text key)."""
        return Variant.explicit(self.width, self.depth, self.resolution)

    @property
    def data(self):
        if self._data is None:
            import time

            from effscale.data.pipeline import load_data
            from effscale.search.proxy import trial_path

            started = time.perf_counter()
            # Held in memory: every trial of the process reads the same prepared tensors.
            new = trial_path() == "new"
            self._data = load_data(self.data_spec, batch_size=self.settings.batch_size,
                                   shuffle_seed=self.settings.seed,  # the splits stay those of every run
                                   in_memory=new, validation_batch_size=self._held_out_batch if new else None)
            if self.timings is not None:
                self.timings["data"] = self.timings.get("data", 0.0) + time.perf_counter() - started
        return self._data

    @property
    def _held_out_batch(self) -> int:
        from effscale.data.pipeline import held_out_batch

        return held_out_batch(self.settings.batch_size)

    def augmented_data(self, augment: str):
        """The same splits as :attr:`data` with ``augment`` on the training images (an element
        pipeline: augmentation is drawn anew every epoch, so it is not held in memory)."""
        if self._augmented is None:
            from effscale.data.pipeline import load_data

            self._augmented = load_data(self.data_spec, batch_size=self.settings.batch_size,
                                        shuffle_seed=self.settings.seed, augment=augment,
                                        validation_batch_size=self._held_out_batch)
        return self._augmented

    def train(self, genotype: Genotype, seed_index: int = 0, epochs: int | None = None) -> dict:
        """One proxy training of ``genotype`` with seed ``settings.seed + seed_index`` (seed 0: the
        data order of ``settings.seed``; others: a reshuffle of the same training split). Stored
        in ``trainings_dir`` as ``KEY-eEPOCHS-sSEED.json`` when it finishes, and read from there
        when it already did, so a killed trial or stage loses no finished training. At the epochs
        of :attr:`top_rung` the training images are augmented (``KEY-eEPOCHS-AUGMENT-sSEED.json``)."""
        import dataclasses

        from effscale.common.io import read_json, write_json
        from effscale.search.proxy import proxy_train, reshuffled

        epochs = int(epochs or self.settings.epochs)
        augment = self.top_rung[1] if self.top_rung and epochs == self.top_rung[0] else None
        path = None
        if self.trainings_dir:
            name = f"{genotype.key}-e{epochs}{f'-{augment}' if augment else ''}-s{seed_index}.json"
            path = os.path.join(self.trainings_dir, name)
            try:
                stored = read_json(path)
                if stored.get("genotype") == genotype.encode():
                    return stored
            except (OSError, ValueError):
                pass
        data = self.augmented_data(augment) if augment else self.data
        if seed_index:
            data = reshuffled(data, self.settings.seed * 1000 + seed_index)
        settings = dataclasses.replace(self.settings, seed=self.settings.seed + seed_index)
        out = proxy_train(genotype, self.variant, data, settings, epochs=epochs, reuse=self._reuse,
                          timings=self.timings)
        record = {"genotype": genotype.encode(), "seed": settings.seed, **out,
                  **({"augment": augment} if augment else {})}
        if path:
            import time

            started = time.perf_counter()
            os.makedirs(self.trainings_dir, exist_ok=True)
            write_json(path, record)
            if self.timings is not None:
                self.timings["records"] = self.timings.get("records", 0.0) + time.perf_counter() - started
        return record

    def costs(self, genotype: Genotype) -> dict:
        costs = analytic_costs(genotype, self.data.num_classes)
        violation = self.limits.violation(costs)
        if violation:
            raise Rejected(f"rejected before training: {violation}")
        if self.reward.cost == "latency" or self.limits.needs_latency:
            from effscale.latency import cached_latency

            costs["latency"] = float(cached_latency(genotype, design_variant(genotype), self.latency_dir,
                                                    classes=self.data.num_classes, **self.latency))
            violation = self.limits.violation(costs)
            if violation:
                raise Rejected(f"rejected before training: {violation}")
        return costs

    def run(self, values: dict) -> dict:
        """Train the candidate once per seed; its accuracy (and so the objective) is the mean,
        each seed's accuracy is the metric ``accuracy_seedN`` and their spread ``accuracy_std``."""
        import numpy as np

        genotype = self.space.to_genotype(values)
        costs = self.costs(genotype)
        epochs = int(values.get("tuner/epochs", self.settings.epochs))
        outs = [self.train(genotype, s, epochs) for s in range(self.seeds)]
        accuracies = [o["accuracy"] for o in outs]
        accuracy = float(np.mean(accuracies))
        cost = costs[self.reward.cost]
        metrics = {OBJECTIVE: self.reward(accuracy, cost), "accuracy": accuracy, "cost": cost,
                   "val_loss": float(np.mean([o["val_loss"] for o in outs])), "epochs": float(outs[0]["epochs"]),
                   **costs}
        if self.seeds > 1:
            metrics.update({f"accuracy_seed{s}": a for s, a in enumerate(accuracies)},
                           accuracy_std=float(np.std(accuracies, ddof=1)))
        if self.extra_metrics:
            metrics.update(self.extra_metrics(values))
        return metrics


class _RewardCallback:
    """Adds ``reward`` (and ``cost``) to each epoch's logs from ``val_accuracy``."""

    def __new__(cls, reward: Reward, cost: float):
        import keras

        class RewardCallback(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if logs is None:
                    return
                accuracy = logs.get("val_accuracy", logs.get("accuracy"))
                if accuracy is not None and math.isfinite(accuracy):
                    logs[OBJECTIVE] = reward(accuracy, cost)
                    logs["cost"] = cost

        return RewardCallback()


def SearchHyperModel(space: SearchSpace, classes: int, variant: str | None = None, reward: Reward | None = None,
                     limits: Limits | None = None, settings: ProxySettings = ProxySettings(),
                     steps_per_epoch: int | None = None):
    """A ``keras_tuner.HyperModel`` over ``space``: Keras Tuner's own RandomSearch,
    BayesianOptimization, GridSearch and Hyperband tuners search it unchanged.

    ``build(hp)`` declares the space and returns the compiled candidate (built at ``variant``,
    default the reference's design resolution, BN momentum 0.9); ``fit`` rejects a candidate
    over a hard limit before training (``FailedTrialError``) and logs ``reward`` and ``cost``
    each epoch, so ``objective=keras_tuner.Objective("reward", "max")`` works. The cosine
    schedule (``settings.schedule``) decays over ``settings.epochs`` x ``steps_per_epoch`` steps,
    so it needs ``steps_per_epoch`` (batches per epoch of the data ``tuner.search`` gets).

    >>> import keras_tuner
    >>> hm = SearchHyperModel(SearchSpace("tiny", open=("kernel",)), classes=10, variant="w=0.25,d=0.5,r=16",
    ...                       steps_per_epoch=20)
    >>> hp = keras_tuner.HyperParameters()
    >>> hm.build(hp).output_shape, sorted(hp.values)[:2]
    ((None, 10), ['stage1/kernel', 'stage2/kernel'])
    """
    import keras
    import keras_tuner

    reward = reward or Reward("macs", analytic_costs(space.reference, classes)["macs"])
    limits = limits or Limits()
    if settings.schedule != "constant" and not steps_per_epoch:
        from effscale.common.errors import UserError

        raise UserError(f"the {settings.schedule} schedule needs steps_per_epoch= (batches per epoch), "
                        "or use ProxySettings(schedule='constant')")

    class _SearchHyperModel(keras_tuner.HyperModel):
        def __init__(self):
            super().__init__(name="effscale_search")
            self.space, self.classes, self.reward, self.limits, self.settings = space, classes, reward, limits, settings
            self.variant = variant

        def declare_hyperparameters(self, hp):
            self.space.declare(hp)

        def genotype(self, hp) -> Genotype:
            return self.space.to_genotype(hp.values)

        def build(self, hp):
            from effscale.model.builder import ModelOptions, build

            genotype = self.space.declare(hp)
            options = ModelOptions(bn_momentum=self.settings.bn_momentum, dropout=self.settings.dropout)
            model = build(genotype, self.variant or design_variant(genotype), classes=self.classes, options=options)
            model.compile(self.settings.make_optimizer(steps_per_epoch), "sparse_categorical_crossentropy",
                          metrics=["accuracy"], jit_compile=False)
            return model

        def fit(self, hp, model, *args, callbacks=None, **kwargs):
            genotype = self.genotype(hp)
            costs = analytic_costs(genotype, self.classes)
            if self.reward.cost == "latency" or self.limits.needs_latency:
                from effscale.latency import measure_latency
                from effscale.model.builder import build

                costs["latency"] = measure_latency(build(genotype, design_variant(genotype), classes=self.classes))
            violation = self.limits.violation(costs)
            if violation:
                raise keras_tuner.errors.FailedTrialError(f"rejected before training: {violation}")
            callbacks = [_RewardCallback(self.reward, costs[self.reward.cost]), keras.callbacks.TerminateOnNaN(),
                         *(callbacks or [])]
            import tensorflow as tf

            if isinstance(args[0] if args else kwargs.get("x"), tf.data.Dataset):
                kwargs.setdefault("shuffle", False)  # a tf.data input shuffles itself; True only makes Keras warn
            return model.fit(*args, callbacks=callbacks, **kwargs)

    return _SearchHyperModel()
