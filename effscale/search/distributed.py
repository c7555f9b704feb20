"""Distributed search over Keras Tuner's chief / worker gRPC mode: the process's role from the
``KERASTUNER_*`` environment, a worker's heartbeat, and the chief's server, which ends the trial
of a worker that went silent (reaping) so a killed worker does not stop the search.

>>> import os
>>> "KERASTUNER_ORACLE_PORT" in os.environ or role() is None
True
"""

from __future__ import annotations

import os
import sys
import threading
import time

from effscale.common.errors import UserError

DEFAULT_LOOPBACK = "127.0.0.1"


def role() -> str | None:
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


class Heartbeat:
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


# -- the chief's server ------------------------------------------------------------------------------
def serve_chief(oracle, worker_timeout: float, on_trial_end=None, poll_s: float = 0.5, workers=None) -> None:
    """Serve ``oracle`` to workers over gRPC (Keras Tuner's servicer) until the search is done.

    Unlike ``keras_tuner``'s own loop, a worker silent for ``worker_timeout`` seconds (no
    request, no heartbeat) has its running trial ended FAILED and is forgotten, so the chief
    finishes even when a worker was killed. ``workers``: the
    :class:`~effscale.search.local_workers.LocalWorkers` this process started; once none of them
    runs, the chief stops (UserError) rather than wait for workers that will not come.
    """
    from concurrent import futures

    import grpc
    from effscale.search._keras_tuner import add_servicer_to_server, oracle_servicer

    class Servicer(oracle_servicer()):
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
    add_servicer_to_server(servicer, server)
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
            if workers is not None and not workers.alive():
                if servicer.stop_triggered and not oracle.ongoing_trials:
                    break
                said = workers.failure()
                raise UserError("every worker process ended before the search did"
                                + (f" ({said})" if said else "") + "; rerun the same command to resume")
    finally:
        server.stop(grace=1)


def _synchronized(func):
    import keras_tuner

    return keras_tuner.synchronized(func)


def _reap(oracle, last_seen, timeout, started):
    from effscale.search import _keras_tuner as trial_module

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
