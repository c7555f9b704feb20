"""What every effscale oracle shares: atomic state files and a resume that survives them.

keras-tuner writes ``oracle.json`` and ``trial_*/trial.json`` in place (``utils.save_json``), so a
kill in the middle of a write can leave a truncated file that does not reload. Oracles that mix
in :class:`AtomicStateMixin` write every state file through :mod:`effscale.common.io` (temporary file +
``os.replace``) and, on reload, survive a truncated file written by anything else:

* an unreadable ``trial.json`` becomes a FAILED trial with the same id (its id is never reused);
* an unreadable ``oracle.json`` is rebuilt from the trials (:meth:`rebuild_state`).

The same mixin wraps Keras Tuner's own Random, Bayesian and Hyperband oracles
(:func:`atomic_builtin_oracle`), so every search effscale runs resumes the same way.
"""

from __future__ import annotations

import glob
import os
import sys

from effscale.common.io import plain_json, read_json, write_json
from effscale.search import _keras_tuner as internals


class AtomicStateMixin(internals.TrialFileHook):
    """Mix into a ``keras_tuner.Oracle`` subclass (before it in the bases)."""

    #: set by reload(): what had to be repaired, for the search log and the tests
    repaired: list

    def save(self):
        write_json(internals.oracle_file(self), self.get_state())

    def write_trial(self, trial):
        write_json(os.path.join(internals.trial_dir(self, trial.trial_id), "trial.json"), trial.get_state())

    def reload(self):
        self.repaired = []
        for fname in sorted(glob.glob(os.path.join(internals.project_dir(self), "trial_*", "trial.json"))):
            trial_id = os.path.basename(os.path.dirname(fname))[len("trial_"):]
            try:
                trial = internals.Trial.from_state(read_json(fname))
            except (ValueError, KeyError, TypeError) as error:
                trial = internals.Trial(self.hyperparameters.copy(), trial_id=trial_id,
                                           status=internals.TrialStatus.FAILED)
                trial.message = f"trial file was unreadable on resume ({type(error).__name__}); counted as FAILED"
                self.write_trial(trial)
                self.repaired.append(f"trial {trial_id}: {trial.message}")
            self.trials[trial.trial_id] = trial
        try:
            state = read_json(internals.oracle_file(self))
            self.set_state(state)
        except (ValueError, KeyError, TypeError, OSError) as error:
            self.repaired.append(f"oracle state unreadable ({type(error).__name__}); rebuilt from "
                                 f"{len(self.trials)} trials")
            self.rebuild_state()
        for message in self.repaired:
            print(f"effscale: resume: {message}", file=sys.stderr)
        # As keras-tuner does: trials that were running are run again.
        for _, trial in self.ongoing_trials.items():
            internals.retry_queue(self).append(trial.trial_id)
        self.ongoing_trials = {}

    def set_state(self, state):
        super().set_state(state)
        # A trial whose file was repaired as FAILED may still be listed as running.
        for trial_id, trial in self.trials.items():
            if trial.status == "FAILED" and trial_id not in self.end_order:
                self.end_order.append(trial_id)
                self.ongoing_trials = {k: t for k, t in self.ongoing_trials.items() if t.trial_id != trial_id}
                if trial_id in internals.retry_queue(self):
                    internals.retry_queue(self).remove(trial_id)

    def rebuild_state(self):
        """Recreate the base oracle's bookkeeping from the trials alone (ids, order, dedup
        hashes); subclasses extend it with their own state."""
        ids = sorted(self.trials, key=lambda i: (len(i), i))
        self.start_order = list(ids)
        done = {"COMPLETED", "FAILED", "INVALID"}
        self.end_order = [i for i in ids if self.trials[i].status in done]
        self.ongoing_trials = {}
        hashes = {i: internals.values_hash(self, self.trials[i].hyperparameters.values) for i in ids
                  if self.trials[i].hyperparameters.values}
        internals.restore_bookkeeping(self, [i for i in ids if self.trials[i].status not in done], hashes)


def atomic_builtin_oracle(name: str):
    """Keras Tuner's Random / Bayesian / Hyperband oracle class with atomic state files.

    >>> atomic_builtin_oracle("random").__name__
    'AtomicRandomSearchOracle'
    """
    import keras_tuner

    bases = {"random": keras_tuner.oracles.RandomSearchOracle,
             "bayesian": keras_tuner.oracles.BayesianOptimizationOracle,
             "hyperband": keras_tuner.oracles.HyperbandOracle,
             "grid": keras_tuner.oracles.GridSearchOracle}
    base = bases[name]
    return _ATOMIC.setdefault(name, type("Atomic" + base.__name__, (AtomicStateMixin, base), {
        "__doc__": f"keras_tuner {base.__name__} with atomic state files and a robust resume.",
        "__module__": __name__}))


_ATOMIC: dict = {}


def finished_trials(oracle) -> tuple[list[dict], list[float]]:
    """(values, scores) of the oracle's COMPLETED trials with a finite score; scores are
    negated for a minimized objective, so higher is always better."""
    import math

    values, scores = [], []
    sign = 1.0 if oracle.objective.direction == "max" else -1.0
    cache = oracle.__dict__.setdefault("_finished_cache", {})  # a finished trial never changes
    for trial_id, trial in oracle.trials.items():
        if trial_id not in cache:
            if trial.status != "COMPLETED" or trial.score is None or not math.isfinite(trial.score):
                continue
            cache[trial_id] = ({k: v for k, v in trial.hyperparameters.values.items() if not k.startswith("tuner/")},
                               sign * float(trial.score))
        values.append(cache[trial_id][0])
        scores.append(cache[trial_id][1])
    return values, scores


jsonable = plain_json  # a JSON round-trippable copy (numpy scalars and arrays to Python)
