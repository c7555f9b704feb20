"""The parts of Keras Tuner that effscale relies on beyond its documented API, in one place.

Checked against keras-tuner 1.4.x (the range pinned in pyproject.toml). ``Trial``,
``TrialStatus`` and ``BaseTuner`` are re-exported by ``keras_tuner.engine``; the gRPC chief's
``protos`` and ``OracleServicer`` live only under ``keras_tuner.src``. The oracles and the tuner
also call private methods, read private state and override two private hooks: every one of them
is listed in :data:`PRIVATE_MEMBERS` / :data:`PRIVATE_STATE` and reached only through the
accessors and hook mixins below (``tests/test_keras_tuner_internals.py`` fails on any of these
names elsewhere in ``effscale/``). :func:`missing_internals` lists whatever a Keras Tuner release
no longer has, so an upgrade fails one clear test instead of a search.

>>> missing_internals()
[]
>>> import keras_tuner
>>> oracle = keras_tuner.oracles.RandomSearchOracle(objective=keras_tuner.Objective("score", "max"), max_trials=1)
>>> hp = keras_tuner.HyperParameters(); _ = hp.Choice("k", [3, 5])
>>> oracle.update_space(hp)
>>> values_hash(oracle, {"k": 3}) == values_hash(oracle, {"k": 3}), is_duplicate(oracle, {"k": 3})
(True, False)
"""

from __future__ import annotations

import contextlib

from keras_tuner.engine.base_tuner import BaseTuner
from keras_tuner.engine.trial import Trial, TrialStatus

# owner -> methods effscale overrides or calls on it (the underscored ones are private)
PRIVATE_MEMBERS = {
    "Oracle": ("_set_project_dir", "_get_oracle_fname", "_get_trial_dir", "_save_trial", "_random_values",
               "_duplicate", "_compute_values_hash"),
    "BayesianOptimizationOracle": ("_make_gpr", "_nonfixed_space", "_random_populate_space", "_vectorize_trials",
                                   "_vector_to_values"),
    "BaseTuner": ("_get_tuner_fname", "_is_worker", "run_trial", "on_trial_begin", "on_trial_end", "save",
                  "reload"),
    "OracleServicer": ("CreateTrial", "UpdateTrial", "EndTrial", "GetTrial"),
}
# owner -> state an instance must hold (read and restored by effscale's oracles and the chief)
PRIVATE_STATE = {
    "Oracle": ("_tried_so_far", "_id_to_hash", "_retry_queue", "_run_times", "ongoing_trials", "tuner_ids",
               "end_order", "trials", "_project_dir"),
    "BayesianOptimizationOracle": ("_random_state",),
}


def private_names() -> set[str]:
    """Every private (underscored) Keras Tuner member above: the names no other effscale module may use.

    >>> "_duplicate" in private_names(), "run_trial" in private_names()
    (True, False)
    """
    names = [n for group in (*PRIVATE_MEMBERS.values(), *PRIVATE_STATE.values()) for n in group]
    return {n for n in names if n.startswith("_")}


# -- oracle: project files ---------------------------------------------------------------------
def set_project_dir(oracle, directory: str, project_name: str) -> None:
    """Point an oracle at ``directory/project_name`` without a tuner (``Oracle._set_project_dir``)."""
    oracle._set_project_dir(directory, project_name)


def project_dir(oracle) -> str:
    """The oracle's project folder (``Oracle._project_dir``)."""
    return oracle._project_dir


def oracle_file(oracle) -> str:
    """The path of the oracle's ``oracle.json`` (``Oracle._get_oracle_fname``)."""
    return oracle._get_oracle_fname()


def trial_dir(oracle, trial_id: str) -> str:
    """The folder of one trial (``Oracle._get_trial_dir``)."""
    return oracle._get_trial_dir(trial_id)


def keep_in_memory(oracle):
    """Switch off the oracle's state files (``save`` and the private ``_save_trial`` become no-ops
    on this instance), for replays that never resume; :func:`write_state_files` undoes it."""
    oracle.save = lambda: None
    oracle._save_trial = lambda trial: None
    return oracle


def write_state_files(oracle, directory: str | None = None, project_name: str | None = None):
    """Undo :func:`keep_in_memory`; with ``directory``, point the oracle at ``directory/project_name``."""
    for name in ("save", "_save_trial"):
        oracle.__dict__.pop(name, None)
    if directory is not None:
        set_project_dir(oracle, directory, project_name)
    return oracle


# -- oracle: proposing values ------------------------------------------------------------------
def random_values(oracle):
    """Keras Tuner's own untried random values, or None when the space looks exhausted
    (``Oracle._random_values``)."""
    return oracle._random_values()


def is_duplicate(oracle, values) -> bool:
    """Whether ``values`` were tried already (``Oracle._duplicate``)."""
    return oracle._duplicate(values)


def values_hash(oracle, values) -> str:
    """Keras Tuner's deduplication key of ``values`` (``Oracle._compute_values_hash``)."""
    return oracle._compute_values_hash(values)


def tried_hashes(oracle) -> set:
    """The deduplication keys of every tried trial (``Oracle._tried_so_far``)."""
    return oracle._tried_so_far


# -- oracle: bookkeeping a resume restores -----------------------------------------------------
def retry_queue(oracle) -> list:
    """Trial ids to run again, in order (``Oracle._retry_queue``; the list itself, to change in place)."""
    return oracle._retry_queue


def restore_bookkeeping(oracle, retry: list, hashes: dict) -> None:
    """Set the base oracle's private bookkeeping from trials alone: the retry queue, run counts
    (none) and the deduplication keys ``hashes`` (trial id -> key)."""
    import collections

    oracle._retry_queue = list(retry)
    oracle._run_times = collections.defaultdict(lambda: 0)
    oracle._tried_so_far = set(hashes.values())
    oracle._id_to_hash = collections.defaultdict(lambda: None, hashes)


# -- Bayesian optimization oracle --------------------------------------------------------------
def nonfixed_space(oracle) -> list:
    """The hyperparameters the Gaussian process models (``_nonfixed_space``)."""
    return oracle._nonfixed_space()


def random_populate_space(oracle) -> dict:
    """A random proposal, as ``populate_space`` returns it (``_random_populate_space``)."""
    return oracle._random_populate_space()


def vectorize_trials(oracle):
    """(x, y) of the finished trials; y is negated when maximizing (``_vectorize_trials``)."""
    return oracle._vectorize_trials()


def vector_to_values(oracle, vector) -> dict:
    """Hyperparameter values of one point of the unit cube (``_vector_to_values``)."""
    return oracle._vector_to_values(vector)


def make_gpr(oracle):
    """A fresh Gaussian-process regressor, as the oracle builds one (``_make_gpr``)."""
    return oracle._make_gpr()


def random_state(oracle):
    """The oracle's ``numpy.random.RandomState`` (``_random_state``)."""
    return oracle._random_state


def set_random_state(oracle, state) -> None:
    oracle._random_state = state


# -- private hooks Keras Tuner calls: a subclass overrides the public name instead --------------
class TrialFileHook:
    """Keras Tuner writes each trial through the private ``Oracle._save_trial``; mixed in before
    the oracle class, it calls the subclass's ``write_trial(trial)`` instead."""

    def _save_trial(self, trial):
        self.write_trial(trial)


class GaussianProcessHook:
    """``BayesianOptimizationOracle`` builds its regressor in the private ``_make_gpr``; mixed in
    before it, the subclass's ``adjust_gpr(gpr)`` sees (and may change) every regressor built."""

    def _make_gpr(self):
        return self.adjust_gpr(super()._make_gpr())


# -- tuner -------------------------------------------------------------------------------------
def is_worker(tuner) -> bool:
    """Whether this process is a distributed worker, not the chief (``BaseTuner._is_worker``)."""
    return tuner._is_worker()


def tuner_file(tuner) -> str:
    """The path of the tuner's own state file (``BaseTuner._get_tuner_fname``)."""
    return tuner._get_tuner_fname()




def oracle_servicer():
    """Keras Tuner's gRPC ``OracleServicer`` class (private: ``keras_tuner.src.distribute``)."""
    from keras_tuner.src.distribute import oracle_chief

    return oracle_chief.OracleServicer


def oracle_client():
    """Keras Tuner's gRPC ``OracleClient`` class, what a worker talks to the chief through
    (private: ``keras_tuner.src.distribute.oracle_client``)."""
    from keras_tuner.src.distribute import oracle_client as module

    return module.OracleClient


def add_servicer_to_server(servicer, server) -> None:
    """Register an ``OracleServicer`` on a ``grpc.server`` (private: ``keras_tuner.src.protos``)."""
    from keras_tuner.src import protos

    quiet_condition_protos()
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)


def quiet_condition_protos() -> None:
    """Keras Tuner 1.4.x's ``Parent.to_proto`` (private: ``keras_tuner.src.engine.conditions``)
    prints the first value of every conditional hyperparameter it sends over gRPC, a stray debug
    line: a chief printed ``mbconv`` many times a trial. A module-level ``print`` in that module
    shadows the built-in there only."""
    from keras_tuner.src.engine import conditions

    conditions.print = lambda *args, **kwargs: None


@contextlib.contextmanager
def trials_fail_quietly():
    """Inside the block Keras Tuner does not print the traceback of each failed trial (its
    private ``keras_tuner.src.config.DEBUG``, True in 1.4.x, prints them all, even a documented
    ``--max-macs`` rejection); the traceback stays in the trial's ``message`` (trial.json) and
    effscale's progress prints one line per trial with its reason."""
    from keras_tuner.src import config

    saved = config.DEBUG
    config.DEBUG = False
    try:
        yield
    finally:
        config.DEBUG = saved


def missing_internals() -> list[str]:
    """Every internal above that this Keras Tuner lacks, as ``'owner.name'`` (empty when all are there)."""
    import keras_tuner

    missing = []
    try:
        servicer = oracle_servicer()
        oracle_client()
        from keras_tuner.src import protos

        protos.get_service_grpc().add_OracleServicer_to_server  # noqa: B018 - may raise AttributeError
    except (ImportError, AttributeError) as error:
        missing.append(f"keras_tuner.src gRPC chief ({error})")
        servicer = None
    try:
        from keras_tuner.src.engine import conditions  # noqa: F401 - quiet_condition_protos
    except ImportError:
        missing.append("keras_tuner.src.engine.conditions")
    try:
        from keras_tuner.src import config

        if not hasattr(config, "DEBUG"):
            missing.append("keras_tuner.src.config.DEBUG")
    except ImportError:
        missing.append("keras_tuner.src.config")
    owners = {"Oracle": keras_tuner.Oracle, "BaseTuner": BaseTuner, "OracleServicer": servicer,
              "BayesianOptimizationOracle": keras_tuner.oracles.BayesianOptimizationOracle}
    for owner, names in PRIVATE_MEMBERS.items():
        missing += [f"{owner}.{name}" for name in names if owners[owner] is None or not hasattr(owners[owner], name)]
    objective = keras_tuner.Objective("score", "max")
    instances = {"Oracle": keras_tuner.oracles.RandomSearchOracle(objective=objective, max_trials=1),
                 "BayesianOptimizationOracle": keras_tuner.oracles.BayesianOptimizationOracle(objective=objective,
                                                                                             max_trials=1)}
    for owner, names in PRIVATE_STATE.items():
        oracle = instances[owner]
        if hasattr(oracle, "_set_project_dir"):
            oracle._set_project_dir("never-written", "probe")  # only sets two attributes
        missing += [f"{owner} instance .{name}" for name in names if not hasattr(oracle, name)]
    return missing


__all__ = ["BaseTuner", "Trial", "TrialStatus", "oracle_servicer", "oracle_client", "add_servicer_to_server",
           "missing_internals", "PRIVATE_MEMBERS", "PRIVATE_STATE", "private_names", "set_project_dir",
           "project_dir", "oracle_file", "trial_dir", "keep_in_memory", "write_state_files", "random_values",
           "is_duplicate", "values_hash", "tried_hashes", "retry_queue", "restore_bookkeeping",
           "nonfixed_space", "random_populate_space", "vectorize_trials", "vector_to_values", "make_gpr",
           "random_state", "set_random_state", "TrialFileHook", "GaussianProcessHook", "is_worker",
           "tuner_file", "trials_fail_quietly"]
