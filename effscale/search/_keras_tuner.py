"""The parts of Keras Tuner that effscale relies on beyond its documented API, in one place.

Checked against keras-tuner 1.4.x (the range pinned in pyproject.toml). ``Trial``,
``TrialStatus`` and ``BaseTuner`` are re-exported by ``keras_tuner.engine``; the gRPC chief's
``protos`` and ``OracleServicer`` live only under ``keras_tuner.src``. The oracles and the tuner
also override or call private methods and read private state (:data:`PRIVATE_MEMBERS`);
:func:`missing_internals` lists whatever a Keras Tuner release no longer has, so an upgrade
fails one clear test instead of a search.

>>> missing_internals()
[]
"""

from __future__ import annotations

from keras_tuner.engine.base_tuner import BaseTuner
from keras_tuner.engine.trial import Trial, TrialStatus

# owner -> private methods effscale overrides or calls on it
PRIVATE_MEMBERS = {
    "Oracle": ("_set_project_dir", "_get_oracle_fname", "_get_trial_dir", "_save_trial", "_random_values",
               "_duplicate", "_compute_values_hash"),
    "BaseTuner": ("_get_tuner_fname", "_is_worker", "run_trial", "on_trial_begin", "on_trial_end", "save",
                  "reload"),
    "OracleServicer": ("CreateTrial", "UpdateTrial", "EndTrial", "GetTrial"),
}
# private state an oracle instance must hold (read and restored by effscale's oracles and the chief)
ORACLE_STATE = ("_tried_so_far", "_id_to_hash", "_retry_queue", "_run_times", "ongoing_trials", "tuner_ids",
                "end_order", "trials", "_project_dir")


def oracle_servicer():
    """Keras Tuner's gRPC ``OracleServicer`` class (private: ``keras_tuner.src.distribute``)."""
    from keras_tuner.src.distribute import oracle_chief

    return oracle_chief.OracleServicer


def add_servicer_to_server(servicer, server) -> None:
    """Register an ``OracleServicer`` on a ``grpc.server`` (private: ``keras_tuner.src.protos``)."""
    from keras_tuner.src import protos

    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)


def missing_internals() -> list[str]:
    """Every internal above that this Keras Tuner lacks, as ``'owner.name'`` (empty when all are there)."""
    import keras_tuner

    missing = []
    try:
        servicer = oracle_servicer()
        from keras_tuner.src import protos

        protos.get_service_grpc().add_OracleServicer_to_server  # noqa: B018 - may raise AttributeError
    except (ImportError, AttributeError) as error:
        missing.append(f"keras_tuner.src gRPC chief ({error})")
        servicer = None
    owners = {"Oracle": keras_tuner.Oracle, "BaseTuner": BaseTuner, "OracleServicer": servicer}
    for owner, names in PRIVATE_MEMBERS.items():
        missing += [f"{owner}.{name}" for name in names if owners[owner] is None or not hasattr(owners[owner], name)]
    oracle = keras_tuner.oracles.RandomSearchOracle(objective=keras_tuner.Objective("score", "max"), max_trials=1)
    if hasattr(oracle, "_set_project_dir"):
        oracle._set_project_dir("never-written", "probe")  # only sets two attributes
    missing += [f"Oracle instance .{name}" for name in ORACLE_STATE if not hasattr(oracle, name)]
    return missing


__all__ = ["BaseTuner", "Trial", "TrialStatus", "oracle_servicer", "add_servicer_to_server", "missing_internals",
           "PRIVATE_MEMBERS", "ORACLE_STATE"]
