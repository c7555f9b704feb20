"""The Keras Tuner tuner of a search: each trial is run by a :class:`~effscale.search.trial.TrialRunner`,
state files are written atomically, and a distributed worker sends heartbeats while it trains."""

from __future__ import annotations

import time

from effscale.common.errors import OutputError
from effscale.common.interrupt import reraise_if_interrupted
from effscale.common.io import write_failure, write_json
from effscale.search.distributed import Heartbeat
from effscale.search.proxy import ProxyFailure
from effscale.search.trial import Rejected, TrialRunner


def make_tuner_class():
    import keras_tuner
    from effscale.search import _keras_tuner as internals
    from effscale.search._keras_tuner import BaseTuner

    class SearchTuner(BaseTuner):
        """Runs each trial: limits, proxy training, reward. State files are written atomically."""

        def __init__(self, oracle, runner: "TrialRunner", directory, project_name, progress=None):
            self.runner = runner
            self.progress = progress
            self._heartbeat = None
            super().__init__(oracle=oracle, hypermodel=None, directory=directory, project_name=project_name,
                             overwrite=False)

        def run_trial(self, trial, *args, **kwargs):
            self.last_metrics = None
            try:
                self.last_metrics = self.runner.run(trial.hyperparameters.values)
                # A signal whose Interrupted was raised inside a callback Python ignores (a weakref
                # finalizer, seen under load) stops the search here, before the trial counts.
                reraise_if_interrupted()
                return self.last_metrics
            except (ProxyFailure, Rejected) as error:
                raise keras_tuner.errors.FailedTrialError(str(error)) from None
            except Exception as error:
                reraise_if_interrupted()  # a signal turned into another error inside TensorFlow
                failure = write_failure(getattr(error, "filename", None) or self.runner.trainings_dir or "the project",
                                        error) if not isinstance(error, OutputError) else error
                if failure is not None:  # a full or unwritable disk ends the search, not the trial:
                    stop = keras_tuner.errors.FatalError(str(failure))  # Keras Tuner re-raises these
                    stop.failure = failure  # run_search raises it
                    raise stop from None
                raise

        def on_trial_begin(self, trial):
            self._trial_started = time.monotonic()
            if internals.is_worker(self):
                self._heartbeat = Heartbeat(self.oracle, trial.trial_id, self.runner.heartbeat_s)

        def on_trial_end(self, trial):
            if self._heartbeat:
                self._heartbeat.stop()
                self._heartbeat = None
            super().on_trial_end(trial)
            if self.progress:
                self.progress(trial, time.monotonic() - self._trial_started, self.last_metrics)

        def save(self):
            if not internals.is_worker(self):
                self.oracle.save()
            write_json(internals.tuner_file(self), self.get_state())

        def reload(self):
            if not internals.is_worker(self):
                self.oracle.reload()

    return SearchTuner
