"""Search a baseline cell: a Keras Tuner oracle proposes genotypes in a :class:`SearchSpace`,
each is proxy-trained and scored by the MnasNet reward, and every trial is recorded.

:func:`run_search` is the Python entry point (``effscale search`` is its command line). A
project directory holds everything, written atomically after every trial::

    DIR/search.json          the search's configuration (a rerun must match it) and summary
    DIR/trials.csv           one row per trial: id, status, genotype, accuracy, cost, reward, ...
    DIR/pareto.csv           the Pareto front of (accuracy, cost) over completed trials
    DIR/best_genotype.json   the best genotype (loads with ``effscale.load_genotype``)
    DIR/tuner/               Keras Tuner's oracle.json and trial_*/trial.json
    DIR/latency/             measured latencies, cached by genotype key
    DIR/prescreen.json       with ``prescreen="PROXY:N"``: every prescreen's candidates and scores

Rerunning the same call resumes: finished trials are kept, the trial that was running is run
again, and the oracle's state (population, controller, random state) is the one saved.

Distributed search uses Keras Tuner's chief / worker mode: set ``KERASTUNER_TUNER_ID`` ("chief"
or e.g. "tuner1") and ``KERASTUNER_ORACLE_PORT`` (and ``KERASTUNER_ORACLE_IP``, which defaults to
127.0.0.1, loopback) and run the same search in each process. Nothing listens on a port
unless those variables are set. The chief ends a trial FAILED when its worker has not been
heard from for ``worker_timeout`` seconds (workers send a heartbeat while they train), so a
killed worker does not stop the search.

>>> parse_target("400M")
400000000.0
>>> run_search("tiny", oracle="annealing", project_dir="unused")
Traceback (most recent call last):
...
effscale.errors.UserError: unknown oracle 'annealing': expected one of evolution, reinforce, random, bayesian, hyperband, differentiable
"""

from __future__ import annotations

import csv
import glob
import io
import math
import os
import re
import sys
import threading
import time
from dataclasses import dataclass, field

from effscale.errors import UserError
from effscale.genotype import Genotype, load_genotype
from effscale.io import read_json, write_json, write_text
from effscale.objectives import COST_KINDS, Limits, Reward, pareto_front
from effscale.proxy import ProxyFailure, ProxySettings
from effscale.space import SearchSpace

ORACLES = ("evolution", "reinforce", "random", "bayesian", "hyperband", "differentiable")
PRESCREEN_ORACLES = ("random", "evolution")  # the oracles that accept prescreen
OBJECTIVE = "reward"
TUNER_FOLDER = "tuner"
CSV_FIELDS = ("trial_id", "status", "genotype", "accuracy", "cost", "reward", "macs", "params", "latency",
              "epochs", "reason")
DEFAULT_LOOPBACK = "127.0.0.1"
SEED_SPREAD = 100_003

_SUFFIXES = {"k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "B": 1e9, "ms": 1e-3, "us": 1e-6, "s": 1.0}


def parse_target(text) -> float:
    """A positive cost target: a number, optionally with k / M / G (or B) or ms / us / s.

    >>> parse_target("400M"), parse_target("5ms"), parse_target(3e6)
    (400000000.0, 0.005, 3000000.0)
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        match = re.fullmatch(r"\s*([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(k|K|M|G|B|ms|us|s)?\s*", str(text))
        if not match:
            raise UserError(f"target {text!r}: expected a positive number, optionally with k, M, G, ms or us")
        value = float(match.group(1)) * _SUFFIXES.get(match.group(2) or "s", 1.0)
    if not (math.isfinite(value) and value > 0):
        raise UserError(f"target must be a positive number, got {text!r}")
    return value


# -- configuration -----------------------------------------------------------------------------
@dataclass(frozen=True)
class SearchConfig:
    """Everything that defines a search. A rerun in the same project dir must match it
    (``trials`` may grow: the search then continues to the new budget)."""

    space: dict
    oracle: str
    reward: dict
    limits: dict
    proxy: dict
    dataset: str
    resolution: int
    width: float
    depth: float
    trials: int
    seed: int
    oracle_options: dict = field(default_factory=dict)
    latency: dict = field(default_factory=dict)
    prescreen: str | None = None

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def mismatch(self, saved: dict) -> str | None:
        mine = self.to_dict()
        for key in sorted(set(mine) | set(saved)):
            if key == "trials":
                continue
            if _normalize(mine.get(key)) != _normalize(saved.get(key)):
                return key
        return None


def _normalize(value):
    import json

    return json.loads(json.dumps(value, sort_keys=True))


def _check_project_dir(project_dir) -> str:
    if not isinstance(project_dir, (str, os.PathLike)) or not str(project_dir).strip():
        raise UserError("a project directory is required")
    path = os.path.abspath(os.fspath(project_dir))
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise UserError(f"project dir {project_dir!r} exists and is not a directory")
        if not os.access(path, os.W_OK | os.X_OK):
            raise UserError(f"project dir {project_dir!r} is not writable")
        return path
    parent = path
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"project dir {project_dir!r} cannot be created: {parent!r} is not a writable directory")
    return path


# -- oracles -----------------------------------------------------------------------------------
def make_oracle(name: str, max_trials: int, hyperparameters, seed: int = 0, epochs: int = 1, prescreen=None,
                **options):
    """A fresh oracle by name, maximizing the ``reward`` metric, with atomic state files.

    ``options`` go to the oracle: ``population_size`` / ``sample_size`` (evolution),
    ``learning_rate`` / ``entropy_weight`` / ``baseline_decay`` (reinforce),
    ``num_initial_points`` (bayesian), ``factor`` (hyperband), ``supernet_epochs`` /
    ``arch_learning_rate`` / ``cost_weight`` / ``warmup_epochs`` / ``temperature`` (differentiable).
    ``prescreen=(score_fn, n)`` (random and evolution only): each proposal scores n untried
    candidates with ``score_fn(list of values dicts) -> list of floats`` and proposes the
    best-scored (:mod:`effscale.oracles.prescreen`; the oracle's ``prescreen_log`` records them).
    """
    import keras_tuner

    from effscale.oracles import (PrescreenRandomSearchOracle, RegularizedEvolutionOracle, ReinforceOracle,
                                  atomic_builtin_oracle)

    if name not in ORACLES:
        raise UserError(f"unknown oracle {name!r}: expected one of {', '.join(ORACLES)}")
    if prescreen is not None and name not in PRESCREEN_ORACLES:
        raise UserError(f"oracle {name!r} does not prescreen: prescreening works with {', '.join(PRESCREEN_ORACLES)}")
    objective = keras_tuner.Objective(OBJECTIVE, "max")
    # keras-tuner treats seed 0 as "random", and its RandomSearch seeds draw k of a search with
    # seed + k, so nearby seeds give the same candidates shifted by one draw: spread them apart.
    common = dict(objective=objective, hyperparameters=hyperparameters, seed=1 + seed * SEED_SPREAD,
                  max_consecutive_failed_trials=max(3, max_trials + 1), tune_new_entries=False,
                  allow_new_entries=False)
    try:
        if name == "evolution":
            population = options.get("population_size", max(2, min(10, max_trials // 3)))
            sample = options.get("sample_size", max(1, min(3, population // 2)))
            return RegularizedEvolutionOracle(max_trials=max_trials, population_size=population,
                                              sample_size=sample, prescreen=prescreen, **common)
        if name == "reinforce":
            keys = ("learning_rate", "entropy_weight", "baseline_decay", "failed_reward")
            return ReinforceOracle(max_trials=max_trials, **{k: options[k] for k in keys if k in options}, **common)
        if name == "random" and prescreen is not None:
            return PrescreenRandomSearchOracle(max_trials=max_trials, prescreen=prescreen, **common)
        if name == "random":
            return atomic_builtin_oracle("random")(max_trials=max_trials, **common)
        if name == "differentiable":
            from effscale.oracles import DifferentiableOracle

            return DifferentiableOracle(max_trials=max_trials, **options, **common)
        if name == "bayesian":
            initial = options.get("num_initial_points", min(10, max(2, max_trials // 4)))
            return atomic_builtin_oracle("bayesian")(max_trials=max_trials, num_initial_points=initial, **common)
        oracle = atomic_builtin_oracle("hyperband")(max_epochs=max(1, epochs), factor=options.get("factor", 3),
                                                    hyperband_iterations=None, **common)
        oracle.max_trials = max_trials
        return oracle
    except TypeError as error:
        raise UserError(f"oracle {name!r}: {error}") from None


# -- costs -------------------------------------------------------------------------------------
def design_variant(genotype: Genotype) -> str:
    """The variant costs are counted at: the genotype itself, at its design resolution."""
    return f"w=1,d=1,r={genotype.resolution}"


def analytic_costs(genotype: Genotype, classes: int) -> dict:
    from effscale.cost import cost

    c = cost(genotype, design_variant(genotype), classes=classes)
    return {"macs": float(c.multiply_adds), "params": float(c.parameters)}


# -- the Keras Tuner HyperModel ------------------------------------------------------------------
def _hypermodel_base():
    import keras_tuner

    return keras_tuner.HyperModel


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
                     limits: Limits | None = None, settings: ProxySettings = ProxySettings()):
    """A ``keras_tuner.HyperModel`` over ``space``: Keras Tuner's own RandomSearch,
    BayesianOptimization, GridSearch and Hyperband tuners search it unchanged.

    ``build(hp)`` declares the space and returns the compiled candidate (built at ``variant``,
    default the reference's design resolution, BN momentum 0.9); ``fit`` rejects a candidate
    over a hard limit before training (``FailedTrialError``) and logs ``reward`` and ``cost``
    each epoch, so ``objective=keras_tuner.Objective("reward", "max")`` works.

    >>> import keras_tuner
    >>> hm = SearchHyperModel(SearchSpace("tiny", open=("kernel",)), classes=10, variant="w=0.25,d=0.5,r=16")
    >>> hp = keras_tuner.HyperParameters()
    >>> hm.build(hp).output_shape, sorted(hp.values)[:2]
    ((None, 10), ['stage1/kernel', 'stage2/kernel'])
    """
    import keras
    import keras_tuner

    reward = reward or Reward("macs", analytic_costs(space.reference, classes)["macs"])
    limits = limits or Limits()

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
            from effscale.builder import build

            genotype = self.space.declare(hp)
            model = build(genotype, self.variant or design_variant(genotype), classes=self.classes,
                          bn_momentum=self.settings.bn_momentum, dropout=self.settings.dropout)
            model.compile(self.settings.make_optimizer(), "sparse_categorical_crossentropy",
                          metrics=["accuracy"], jit_compile=False)
            return model

        def fit(self, hp, model, *args, callbacks=None, **kwargs):
            genotype = self.genotype(hp)
            costs = analytic_costs(genotype, self.classes)
            if self.reward.cost == "latency" or self.limits.needs_latency:
                from effscale.latency import measure_latency
                from effscale.builder import build

                costs["latency"] = measure_latency(build(genotype, design_variant(genotype), classes=self.classes))
            violation = self.limits.violation(costs)
            if violation:
                raise keras_tuner.errors.FailedTrialError(f"rejected before training: {violation}")
            callbacks = [_RewardCallback(self.reward, costs[self.reward.cost]), keras.callbacks.TerminateOnNaN(),
                         *(callbacks or [])]
            return model.fit(*args, callbacks=callbacks, **kwargs)

    return _SearchHyperModel()


# -- the tuner -----------------------------------------------------------------------------------
def _role() -> str | None:
    """'chief', 'worker' or None, from the KERASTUNER_* environment (IP defaults to loopback)."""
    tuner_id = os.environ.get("KERASTUNER_TUNER_ID")
    port = os.environ.get("KERASTUNER_ORACLE_PORT")
    if "KERASTUNER_ORACLE_IP" in os.environ or port:
        if not port or not tuner_id:
            raise UserError("distributed search needs KERASTUNER_TUNER_ID and KERASTUNER_ORACLE_PORT "
                            "(and optionally KERASTUNER_ORACLE_IP, default 127.0.0.1)")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise UserError(f"KERASTUNER_ORACLE_PORT={port!r}: expected a port number")
        os.environ.setdefault("KERASTUNER_ORACLE_IP", DEFAULT_LOOPBACK)
        return "chief" if "chief" in tuner_id else "worker"
    return None


def _make_tuner_class():
    import keras_tuner
    from keras_tuner.src.engine import base_tuner

    class SearchTuner(base_tuner.BaseTuner):
        """Runs each trial: limits, proxy training, reward. State files are written atomically."""

        def __init__(self, oracle, runner: "_TrialRunner", directory, project_name, progress=None):
            self.runner = runner
            self.progress = progress
            self._heartbeat = None
            super().__init__(oracle=oracle, hypermodel=None, directory=directory, project_name=project_name,
                             overwrite=False)

        def run_trial(self, trial, *args, **kwargs):
            self.last_metrics = None
            try:
                self.last_metrics = self.runner.run(trial.hyperparameters.values)
                return self.last_metrics
            except (ProxyFailure, _Rejected) as error:
                raise keras_tuner.errors.FailedTrialError(str(error)) from None

        def on_trial_begin(self, trial):
            self._trial_started = time.monotonic()
            if self._is_worker():
                self._heartbeat = _Heartbeat(self.oracle, trial.trial_id, self.runner.heartbeat_s)

        def on_trial_end(self, trial):
            if self._heartbeat:
                self._heartbeat.stop()
                self._heartbeat = None
            super().on_trial_end(trial)
            if self.progress:
                self.progress(trial, time.monotonic() - self._trial_started, self.last_metrics)

        def save(self):
            if not self._is_worker():
                self.oracle.save()
            write_json(self._get_tuner_fname(), self.get_state())

        def reload(self):
            if not self._is_worker():
                self.oracle.reload()

    return SearchTuner


class _Rejected(Exception):
    """A candidate over a hard limit."""


class _Heartbeat:
    """A worker's background thread telling the chief it is alive while a trial trains."""

    def __init__(self, oracle, trial_id: str, interval: float):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, args=(oracle, trial_id, interval), daemon=True)
        self._thread.start()

    def _beat(self, oracle, trial_id, interval):
        while not self._stop.wait(interval):
            try:
                oracle.get_trial(trial_id)
            except Exception:  # noqa: BLE001 - the chief may be gone; the main loop will see it
                pass

    def stop(self):
        self._stop.set()


class _TrialRunner:
    """What one trial does, independent of Keras Tuner: values -> genotype -> limits -> proxy
    training -> metrics."""

    def __init__(self, space: SearchSpace, reward: Reward, limits: Limits, settings: ProxySettings,
                 dataset: str, resolution: int, width: float, depth: float, latency_dir: str,
                 latency: dict, heartbeat_s: float):
        self.space, self.reward, self.limits, self.settings = space, reward, limits, settings
        self.dataset, self.resolution, self.width, self.depth = dataset, resolution, width, depth
        self.latency_dir, self.latency = latency_dir, latency
        self.heartbeat_s = heartbeat_s
        self._data = None
        self.extra_metrics = None  # optional: values -> dict of more metrics for the trial

    @property
    def variant(self) -> str:
        return f"w={self.width:g},d={self.depth:g},r={self.resolution}"

    @property
    def data(self):
        if self._data is None:
            from effscale.data import load_data

            self._data = load_data(self.dataset, resolution=self.resolution, batch_size=self.settings.batch_size,
                                   shuffle_seed=self.settings.seed)  # the splits stay those of every run
        return self._data

    def costs(self, genotype: Genotype) -> dict:
        costs = analytic_costs(genotype, self.data.num_classes)
        violation = self.limits.violation(costs)
        if violation:
            raise _Rejected(f"rejected before training: {violation}")
        if self.reward.cost == "latency" or self.limits.needs_latency:
            from effscale.latency import cached_latency

            costs["latency"] = float(cached_latency(genotype, design_variant(genotype), self.latency_dir,
                                                    classes=self.data.num_classes, **self.latency))
            violation = self.limits.violation(costs)
            if violation:
                raise _Rejected(f"rejected before training: {violation}")
        return costs

    def run(self, values: dict) -> dict:
        from effscale.proxy import proxy_train

        genotype = self.space.to_genotype(values)
        costs = self.costs(genotype)
        epochs = int(values.get("tuner/epochs", self.settings.epochs))
        out = proxy_train(genotype, self.variant, self.data, self.settings, epochs=epochs)
        cost = costs[self.reward.cost]
        metrics = {OBJECTIVE: self.reward(out["accuracy"], cost), "accuracy": out["accuracy"], "cost": cost,
                   "val_loss": out["val_loss"], "epochs": float(out["epochs"]), **costs}
        if self.extra_metrics:
            metrics.update(self.extra_metrics(values))
        return metrics


# -- records and outputs ---------------------------------------------------------------------------
def _last(trial, name):
    try:
        if trial.metrics.exists(name):
            value = trial.metrics.get_last_value(name)
            return None if value is None else float(value)
    except Exception:  # noqa: BLE001
        return None
    return None


def _reason(trial) -> str:
    if trial.status not in ("FAILED", "INVALID") or not trial.message:
        return ""
    lines = [line.strip() for line in str(trial.message).strip().splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    return re.sub(r"^[\w.]*(FailedTrialError|Error|Exception):\s*", "", last)[:300]


def trial_records(trials, space: SearchSpace) -> list[dict]:
    """One plain dict per Keras Tuner trial, ordered by trial id."""
    records = []
    for trial in sorted(trials, key=lambda t: (len(t.trial_id), t.trial_id)):
        values = trial.hyperparameters.values if trial.hyperparameters else {}
        try:
            genotype = space.to_genotype(values).encode() if values else ""
        except UserError:
            genotype = ""
        records.append({
            "trial_id": trial.trial_id, "status": trial.status, "genotype": genotype,
            "accuracy": _last(trial, "accuracy"), "cost": _last(trial, "cost"), "reward": _last(trial, OBJECTIVE),
            "macs": _last(trial, "macs"), "params": _last(trial, "params"), "latency": _last(trial, "latency"),
            "epochs": _last(trial, "epochs"), "reason": _reason(trial)})
    return records


def _csv(rows: list[dict], fields=CSV_FIELDS) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(fields), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in fields})
    return buffer.getvalue()


def best_record(records: list[dict]) -> dict | None:
    done = [r for r in records if r["status"] == "COMPLETED" and r["reward"] is not None]
    return max(done, key=lambda r: (r["reward"], -int(r["trial_id"]) if r["trial_id"].isdigit() else 0)) if done else None


def write_outputs(project_dir: str, records: list[dict], config: SearchConfig | None = None) -> dict:
    """Write trials.csv, pareto.csv, best_genotype.json and search.json, each atomically."""
    done = [r for r in records if r["status"] == "COMPLETED"]
    front = pareto_front(done)
    best = best_record(records)
    write_text(os.path.join(project_dir, "trials.csv"), _csv(records))
    write_text(os.path.join(project_dir, "pareto.csv"), _csv(front))
    if best:
        write_json(os.path.join(project_dir, "best_genotype.json"), Genotype.parse(best["genotype"]).to_dict())
    summary_path = os.path.join(project_dir, "search.json")
    summary = read_json(summary_path) if os.path.exists(summary_path) else {}
    if config is not None:
        summary["config"] = config.to_dict()
    counts: dict = {}
    for r in records:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    summary["summary"] = {"trials": len(records), "status": counts, "best": best, "pareto": front}
    write_json(summary_path, summary)
    return summary["summary"]


# -- results -----------------------------------------------------------------------------------
@dataclass
class SearchResult:
    """What a search found: the best genotype, every trial, the Pareto front."""

    best_genotype: Genotype | None
    best: dict | None
    trials: list[dict]
    pareto: list[dict]
    project_dir: str
    config: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"best_genotype": self.best_genotype.encode() if self.best_genotype else None, "best": self.best,
                "trials": self.trials, "pareto": self.pareto, "project_dir": self.project_dir}


def load_trials(project_dir: str):
    """Keras Tuner trials read from ``DIR/tuner/trial_*/trial.json`` (unreadable files skipped)."""
    from keras_tuner.src.engine import trial as trial_module

    trials = []
    for fname in glob.glob(os.path.join(project_dir, TUNER_FOLDER, "trial_*", "trial.json")):
        try:
            trials.append(trial_module.Trial.from_state(read_json(fname)))
        except (ValueError, KeyError, TypeError, OSError):
            continue
    return trials


def read_results(project_dir: str) -> SearchResult:
    """The recorded results of a project dir (for ``effscale trials``)."""
    path = os.path.join(os.fspath(project_dir), "search.json")
    if not os.path.isfile(path):
        raise UserError(f"{project_dir!r} is not an effscale search project (no search.json)")
    try:
        saved = read_json(path)
    except ValueError:
        raise UserError(f"{path!r} does not parse") from None
    config = saved.get("config", {})
    space = SearchSpace.from_dict(config["space"])
    records = trial_records(load_trials(project_dir), space)
    best = best_record(records)
    done = [r for r in records if r["status"] == "COMPLETED"]
    return SearchResult(Genotype.parse(best["genotype"]) if best else None, best, records, pareto_front(done),
                        os.fspath(project_dir), config)


def load_oracle(project_dir: str):
    """The oracle of a search project, reloaded from its saved state exactly as a rerun does
    (population, controller, random state), without running anything.

    >>> load_oracle("/nonexistent")
    Traceback (most recent call last):
    ...
    effscale.errors.UserError: '/nonexistent' is not an effscale search project (no search.json)
    """
    path = os.path.join(os.fspath(project_dir), "search.json")
    if not os.path.isfile(path):
        raise UserError(f"{project_dir!r} is not an effscale search project (no search.json)")
    config = read_json(path)["config"]
    space = SearchSpace.from_dict(config["space"])
    settings = ProxySettings.from_dict(config["proxy"])

    def load():
        from effscale.data import load_data

        return load_data(config["dataset"], resolution=config["resolution"], batch_size=settings.batch_size,
                         shuffle_seed=settings.seed)

    variant = f"w={config['width']:g},d={config['depth']:g},r={config['resolution']}"
    screen = _prescreen(config.get("prescreen"), space, variant, load, settings.seed)
    oracle = make_oracle(config["oracle"], config["trials"], space.hyperparameters(), seed=config["seed"],
                         epochs=config["proxy"]["epochs"], prescreen=screen, **config.get("oracle_options", {}))
    oracle.verbose = 0
    oracle._set_project_dir(os.fspath(project_dir), TUNER_FOLDER)
    if os.path.exists(os.path.join(os.fspath(project_dir), TUNER_FOLDER, "oracle.json")):
        oracle.reload()
    return oracle


# -- prescreening ------------------------------------------------------------------------------------
def _prescreen(text, space: SearchSpace, variant: str, load, seed: int):
    """``(score_fn, n)`` for :func:`make_oracle` from ``"PROXY:N"`` (None for None): zero-cost
    scores on the first validation batch of ``load()``, called on the first prescreen."""
    if not text:
        return None
    from effscale.zero_cost import make_score_fn, parse_prescreen

    proxy, n = parse_prescreen(text)
    return make_score_fn(space, proxy, load, variant, seed=seed), n


def _proxy_score(oracle, values: dict) -> dict:
    """``{"proxy_score": s}`` of the prescreen that chose ``values`` (empty where unknown,
    e.g. on a distributed worker, whose oracle is the chief's)."""
    from effscale.oracles.prescreen import values_key

    key = values_key({k: v for k, v in values.items() if not k.startswith("tuner/")})
    for entry in reversed(getattr(oracle, "prescreen_log", [])):
        chosen = entry["candidates"][entry["chosen"]]
        if values_key(chosen["values"]) == key and chosen["score"] is not None:
            return {"proxy_score": float(chosen["score"])}
    return {}


def _write_prescreen(path: str, oracle, text: str | None) -> None:
    if text:
        write_json(os.path.join(path, "prescreen.json"), {"prescreen": text, "log": oracle.prescreen_log})


# -- the chief's server ------------------------------------------------------------------------------
def serve_chief(oracle, worker_timeout: float, on_trial_end=None, poll_s: float = 0.5) -> None:
    """Serve ``oracle`` to workers over gRPC (Keras Tuner's servicer) until the search is done.

    Unlike ``keras_tuner``'s own loop, a worker silent for ``worker_timeout`` seconds (no
    request, no heartbeat) has its running trial ended FAILED and is forgotten, so the chief
    finishes even when a worker was killed.
    """
    from concurrent import futures

    import grpc
    from keras_tuner.src import protos
    from keras_tuner.src.distribute import oracle_chief

    class Servicer(oracle_chief.OracleServicer):
        def __init__(self, oracle):
            super().__init__(oracle)
            self.last_seen: dict[str, float] = {}

        def _seen_trial(self, trial_id):
            for tuner_id, trial in list(self.oracle.ongoing_trials.items()):
                if trial.trial_id == trial_id:
                    self.last_seen[tuner_id] = time.monotonic()

        def CreateTrial(self, request, context):
            self.last_seen[request.tuner_id] = time.monotonic()
            return super().CreateTrial(request, context)

        def UpdateTrial(self, request, context):
            self._seen_trial(request.trial_id)
            return super().UpdateTrial(request, context)

        def EndTrial(self, request, context):
            self._seen_trial(request.trial.trial_id)
            return super().EndTrial(request, context)

        def GetTrial(self, request, context):
            self._seen_trial(request.trial_id)
            return super().GetTrial(request, context)

    address = f"{os.environ['KERASTUNER_ORACLE_IP']}:{os.environ['KERASTUNER_ORACLE_PORT']}"
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = Servicer(oracle)
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    if server.add_insecure_port(address) == 0:
        raise UserError(f"cannot listen on {address}")
    server.start()
    started = time.monotonic()
    reported = len(oracle.end_order)
    try:
        while True:
            time.sleep(poll_s)
            _reap(oracle, servicer.last_seen, worker_timeout, started)
            if on_trial_end and len(oracle.end_order) > reported:
                for trial_id in list(oracle.end_order[reported:]):
                    on_trial_end(oracle.trials[trial_id])
                reported = len(oracle.end_order)
            if servicer.stop_triggered and _finished(oracle):
                break
    finally:
        server.stop(grace=1)


def _synchronized(func):
    import keras_tuner

    return keras_tuner.synchronized(func)


def _reap(oracle, last_seen, timeout, started):
    from keras_tuner.src.engine import trial as trial_module

    @_synchronized
    def reap(oracle):
        now = time.monotonic()
        for tuner_id, trial in list(oracle.ongoing_trials.items()):
            if now - last_seen.get(tuner_id, started) > timeout:
                lost = trial_module.Trial(trial.hyperparameters, trial_id=trial.trial_id,
                                          status=trial_module.TrialStatus.FAILED)
                lost.message = f"worker {tuner_id} stopped responding for {timeout:g} s; trial abandoned"
                print(f"effscale: {lost.message}", file=sys.stderr, flush=True)
                oracle.end_trial(lost)
                oracle.tuner_ids.discard(tuner_id)
        ongoing = set(oracle.ongoing_trials)
        for tuner_id in list(oracle.tuner_ids):
            if tuner_id not in ongoing and now - last_seen.get(tuner_id, started) > timeout:
                oracle.tuner_ids.discard(tuner_id)

    reap(oracle)


def _finished(oracle) -> bool:
    @_synchronized
    def check(oracle):
        return len(oracle.ongoing_trials) == 0 and len(oracle.tuner_ids) == 0

    return check(oracle)


# -- the entry point ---------------------------------------------------------------------------------
def run_search(baseline="tiny", oracle: str = "evolution", cost: str = "macs", target=None,
               constraint: str = "soft", trials: int = 10, epochs: int = 1, dataset: str = "digits",
               project_dir: str = "effscale-search", seed: int = 0, resolution: int | None = None,
               width: float = 1.0, depth: float = 1.0, verbose: int = 1, alpha: float | None = None,
               beta: float | None = None, max_macs: float | None = None, max_params: float | None = None,
               max_latency: float | None = None, open_choices=None, options: dict | None = None,
               stages=None, proxy: ProxySettings | None = None, oracle_options: dict | None = None,
               latency: dict | None = None, worker_timeout: float = 300.0, overwrite: bool = False,
               stream=None, prescreen: str | None = None) -> SearchResult:
    """Search the MnasNet space around ``baseline`` and return a :class:`SearchResult`.

    ``cost`` is ``macs``, ``params`` or ``latency`` (seconds per image, LiteRT on this CPU), all
    counted for the genotype at its design resolution; ``target`` T in those units (default: the
    baseline's own cost). ``constraint`` ``soft`` (w = -0.07) or ``hard`` (alpha 0, beta -1);
    ``alpha`` / ``beta`` override. ``max_macs`` / ``max_params`` / ``max_latency`` are hard limits
    checked before training. Candidates train ``epochs`` epochs on ``dataset`` at
    ``width`` / ``depth`` x and ``resolution`` px (default: the baseline's, at most 64).
    ``open_choices`` / ``options`` / ``stages`` configure the space (:class:`SearchSpace`).
    ``prescreen`` ``"PROXY:N"`` (random and evolution oracles): each trial trains the best of N
    untried candidates by a zero-cost proxy (:mod:`effscale.zero_cost`) on the first validation
    batch at the proxy variant; DIR/prescreen.json records every prescreen, and each trial gets
    its candidate's ``proxy_score`` metric.
    All input is validated before the project dir is touched; bad input raises UserError.
    """
    stream = stream or sys.stdout
    role = _role()
    genotype = load_genotype(baseline)
    if oracle not in ORACLES:
        raise UserError(f"unknown oracle {oracle!r}: expected one of {', '.join(ORACLES)}")
    if cost not in COST_KINDS:
        raise UserError(f"unknown cost {cost!r}: expected one of {', '.join(COST_KINDS)}")
    if not (isinstance(trials, int) and not isinstance(trials, bool) and trials >= 1):
        raise UserError(f"trials must be a positive integer, got {trials!r}")
    if not (isinstance(seed, int) and seed >= 0):
        raise UserError(f"seed must be a non-negative integer, got {seed!r}")
    if not (isinstance(worker_timeout, (int, float)) and worker_timeout > 0):
        raise UserError(f"worker_timeout must be positive, got {worker_timeout!r}")
    if prescreen is not None:
        from effscale.zero_cost import parse_prescreen

        prescreen = "{}:{}".format(*parse_prescreen(prescreen))
        if oracle not in PRESCREEN_ORACLES:
            raise UserError(f"oracle {oracle!r} does not prescreen: prescreening works with "
                            f"{', '.join(PRESCREEN_ORACLES)}")
    space = SearchSpace(genotype, open=open_choices, options=options, stages=stages)
    if oracle == "differentiable":
        from effscale.differentiable import check_supported

        check_supported(space, cost, distributed=role is not None)
    resolution = int(resolution) if resolution is not None else min(genotype.resolution, 64)
    if not 8 <= resolution <= 1024:
        raise UserError(f"resolution must be in 8..1024, got {resolution}")
    from effscale.scaling import Variant

    Variant("proxy", float(width), float(depth), resolution)  # validates width / depth
    settings = proxy or ProxySettings(epochs=epochs, seed=seed)
    if proxy is None and not (isinstance(epochs, int) and epochs >= 1):
        raise UserError(f"epochs must be a positive integer, got {epochs!r}")
    if target is None:
        if cost == "latency":
            raise UserError("cost 'latency' needs an explicit target (seconds per image)")
        target = analytic_costs(genotype, 10)[cost]
    reward = Reward(cost, parse_target(target), constraint, alpha, beta)
    limits = Limits(max_macs, max_params, max_latency)
    latency = dict(latency or {"runs": 10, "warmup": 2, "threads": 1})
    config = SearchConfig(space=space.to_dict(), oracle=oracle, reward=reward.to_dict(), limits=limits.to_dict(),
                          proxy=settings.to_dict(), dataset=str(dataset), resolution=resolution,
                          width=float(width), depth=float(depth), trials=trials, seed=seed,
                          oracle_options=dict(oracle_options or {}), latency=latency, prescreen=prescreen)
    path = _check_project_dir(project_dir)
    config_path = os.path.join(path, "search.json")
    if os.path.exists(config_path) and not overwrite and role != "worker":
        try:
            saved = read_json(config_path).get("config", {})
        except ValueError:
            raise UserError(f"{config_path} does not parse; use a new project dir or overwrite") from None
        key = config.mismatch(saved)
        if key:
            raise UserError(f"project dir {project_dir!r} holds a different search ({key} differs); "
                            "use a new project dir or overwrite")
    elif not os.path.exists(config_path) and os.path.isdir(path) and os.listdir(path) and role != "worker":
        raise UserError(f"project dir {project_dir!r} is not empty and is not an effscale search project")
    from effscale.data import check_source

    check_source(dataset)

    # -- from here on the project dir is written --------------------------------------------------
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if overwrite and role != "worker":
        _clear_project(path)
    os.makedirs(path, exist_ok=True)
    if role != "worker":
        summary = read_json(config_path) if os.path.exists(config_path) else {}
        summary["config"] = config.to_dict()
        write_json(config_path, summary)
    runner = _TrialRunner(space, reward, limits, settings, str(dataset), resolution, float(width), float(depth),
                          os.path.join(path, "latency"), latency, heartbeat_s=max(0.5, min(10.0, worker_timeout / 4)))
    screen = _prescreen(prescreen, space, runner.variant, lambda: runner.data, settings.seed)
    keras_oracle = make_oracle(oracle, trials, space.hyperparameters(), seed=seed, epochs=settings.epochs,
                               prescreen=screen, **(oracle_options or {}))
    if screen:
        runner.extra_metrics = lambda values: _proxy_score(keras_oracle, values)
    keras_oracle.verbose = 0
    if oracle == "differentiable":
        from effscale.differentiable import attach

        attach(keras_oracle, space, runner, reward, os.path.join(path, "supernet"), seed, verbose, stream)
    started = time.monotonic()

    def say(text: str):
        if verbose:
            print(text, file=stream, flush=True)

    def progress(trial, seconds=None, metrics=None):
        records = trial_records([keras_oracle.trials[trial.trial_id]] if role != "worker" else [trial], space)
        row = records[0]
        if role == "worker" and metrics:
            row.update({k: metrics.get(k) for k in ("reward", "accuracy", "cost")})
        if role != "worker":
            all_records = trial_records(keras_oracle.trials.values(), space)
            summary = write_outputs(path, all_records, config)
            _write_prescreen(path, keras_oracle, prescreen)
            best = summary["best"]
        else:
            best = None
        say(_progress_line(row, trials, reward, best, seconds if seconds is not None else time.monotonic() - started))

    tuner_class = _make_tuner_class()
    tuner = tuner_class(keras_oracle, runner, directory=path, project_name=TUNER_FOLDER,
                        progress=progress if role != "chief" else None)
    if role != "worker":
        done = sum(1 for t in keras_oracle.trials.values() if t.status in ("COMPLETED", "FAILED"))
        if done:
            say(f"resuming {path}: {done} finished trial(s) kept")
        for message in getattr(keras_oracle, "repaired", []) or []:
            say(f"repaired: {message}")
    if role == "chief":
        tuner.save()
        say(f"chief serving the {oracle} oracle on {os.environ['KERASTUNER_ORACLE_IP']}:"
            f"{os.environ['KERASTUNER_ORACLE_PORT']}")
        serve_chief(keras_oracle, worker_timeout, on_trial_end=lambda t: progress(t, None))
    else:
        tuner.search()
    if role == "worker":
        records = trial_records(load_trials(path), space)
    else:
        records = trial_records(keras_oracle.trials.values(), space)
        write_outputs(path, records, config)
        _write_prescreen(path, keras_oracle, prescreen)
    best = best_record(records)
    done = [r for r in records if r["status"] == "COMPLETED"]
    result = SearchResult(Genotype.parse(best["genotype"]) if best else None, best, records, pareto_front(done),
                          path, config.to_dict())
    if best:
        say(f"best: trial {best['trial_id']} reward {best['reward']:.4f} accuracy {best['accuracy']:.4f} "
            f"{cost} {_fmt_cost(best['cost'], cost)}: {best['genotype']}")
    return result


def _clear_project(path: str) -> None:
    import shutil

    for name in ("search.json", "trials.csv", "pareto.csv", "best_genotype.json", "prescreen.json"):
        if os.path.exists(os.path.join(path, name)):
            os.unlink(os.path.join(path, name))
    for name in (TUNER_FOLDER, "latency", "supernet"):
        if os.path.isdir(os.path.join(path, name)):
            shutil.rmtree(os.path.join(path, name))


def _fmt_cost(value, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "latency":
        return f"{value * 1e3:.3f}ms"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.3g}{unit}"
    return f"{value:g}"


def _progress_line(row: dict, total: int, reward: Reward, best: dict | None, seconds: float) -> str:
    number = int(row["trial_id"]) + 1 if str(row["trial_id"]).isdigit() else row["trial_id"]
    head = f"trial {number}/{total} {row['status']:<9}"
    if row["status"] == "COMPLETED":
        body = (f"reward {row['reward']:.4f} accuracy {row['accuracy']:.4f} "
                f"{reward.cost} {_fmt_cost(row['cost'], reward.cost)}")
    else:
        body = row["reason"] or "-"
    tail = f" | best {best['reward']:.4f} (trial {best['trial_id']})" if best else ""
    return f"{head} {body} [{seconds:.1f}s]{tail} {row['genotype']}"
