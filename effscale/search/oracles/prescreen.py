"""Prescreening: an oracle draws N untried candidates, a cheap score ranks them, and only the
best-scored one becomes the trial that trains.

:class:`PrescreenMixin` goes before an oracle in its bases; the oracle says how to draw a
candidate (:meth:`PrescreenMixin.prescreen_candidates`) and the mixin scores, picks the argmax
and records every prescreen in :attr:`~PrescreenMixin.prescreen_log`, which is oracle state:
written in the same atomic ``oracle.json`` write as the trial it created, restored on resume.
The score function is plain Python, ``score_fn(list of values dicts) -> list of floats``
(higher = better), e.g. :func:`effscale.search.zero_cost.make_score_fn` or a lookup table; nothing
here needs TensorFlow.

>>> import numpy as np
>>> draws = iter([{"a": 1}, {"a": 1}, {"a": 2}, {"a": 3}])
>>> distinct_candidates(lambda: next(draws), 2, tried=lambda v: v["a"] == 2, attempts=4)
[{'a': 1}, {'a': 3}]
>>> pick_best([0.5, float("nan"), 2.0, 2.0])
2
"""

from __future__ import annotations

import functools
import json
import math

import numpy as np

from effscale.search import _keras_tuner as internals

from effscale.common.errors import UserError
from effscale.search.oracles.base import atomic_builtin_oracle, finished_trials, jsonable


def values_key(values) -> str:
    """A canonical string of a values dict (the same candidate always gives the same key)."""
    return json.dumps(jsonable(values), sort_keys=True)


def distinct_candidates(draw, n: int, tried, attempts: int, exclude=()) -> list[dict]:
    """Up to ``n`` distinct values dicts from ``draw()`` (which may return None), none of them
    ``tried(values)`` nor in ``exclude``, within ``attempts`` draws."""
    found, seen = [], {values_key(v) for v in exclude}
    for _ in range(attempts):
        if len(found) >= n:
            break
        values = draw()
        if values is None:
            continue
        key = values_key(values)
        if key in seen or tried(values):
            continue
        seen.add(key)
        found.append(values)
    return found


def pick_best(scores) -> int:
    """Index of the highest finite score (the first on ties); 0 when none is finite."""
    best, best_score = 0, -math.inf
    for i, s in enumerate(scores):
        if s is not None and math.isfinite(s) and s > best_score:
            best, best_score = i, s
    return best


def check_prescreen(prescreen):
    """``None`` or ``(score_fn, n)`` with a callable and an integer n >= 1."""
    if prescreen is None:
        return None
    try:
        score_fn, n = prescreen
    except (TypeError, ValueError):
        raise UserError(f"prescreen must be (score_fn, n), got {prescreen!r}") from None
    if not callable(score_fn):
        raise UserError(f"prescreen score_fn must be callable, got {score_fn!r}")
    if not (isinstance(n, int) and not isinstance(n, bool) and n >= 1):
        raise UserError(f"prescreen n must be a positive integer, got {n!r}")
    return score_fn, n


class PredictedReward:
    """A cost-aware prescreen score: ``reward(predicted accuracy, exact cost)`` of each
    candidate, instead of a zero-cost proxy that grows with size while the reward penalizes
    cost. The cost is known before training (``cost_fn(values)``, e.g. analytic multiply-adds);
    the accuracy is predicted by :class:`~effscale.search.oracles.predictor.RewardModel` fitted to the
    finished trials (their accuracy recovered from reward and cost), and until ``min_trials``
    have finished it is their mean (or 1), so the candidates are ranked by the cost term alone.
    The prescreening oracle calls :meth:`observe` with the finished trials before each prescreen.

    >>> import keras_tuner
    >>> from effscale.search.objectives import Reward
    >>> hp = keras_tuner.HyperParameters()
    >>> _ = hp.Choice("units", [8, 16, 32, 64])
    >>> score = PredictedReward(hp, cost_fn=lambda v: v["units"] * 1e3, reward=Reward("macs", 16e3, "hard"))
    >>> [round(s, 3) for s in score([{"units": 8}, {"units": 16}, {"units": 64}])]
    [1.0, 1.0, 0.25]
    """

    def __init__(self, hyperparameters, cost_fn, reward, min_trials: int = 5):
        from effscale.search.oracles.predictor import RewardModel

        self.model = RewardModel(hyperparameters, cost_fn, reward)
        self.min_trials = min_trials
        self.fitted = False
        self.accuracy = 1.0

    def observe(self, values_list, scores) -> None:
        self.fitted = len(values_list) >= self.min_trials and len(set(scores)) > 1
        if self.fitted:
            self.model.fit(values_list, scores, seed=len(values_list))
        elif values_list:
            self.accuracy = float((np.asarray(scores) / self.model.factor(values_list)).mean())

    def __call__(self, values_list) -> list[float]:
        if self.fitted:
            return self.model.predict(values_list)[0].tolist()
        return (self.accuracy * self.model.factor(values_list)).tolist()


class PrescreenMixin:
    """Adds ``prescreen=(score_fn, n)`` to a ``keras_tuner.Oracle`` subclass.

    Subclasses implement :meth:`prescreen_candidates`. Without a prescreen the oracle's own
    ``populate_space`` runs unchanged.
    """

    def __init__(self, *args, prescreen=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.prescreen = check_prescreen(prescreen)
        #: one entry per prescreen: {"trial_id", "candidates": [{"values", "score"}], "chosen"}
        self.prescreen_log: list[dict] = []

    def prescreen_candidates(self, n: int) -> list[dict]:
        """Up to ``n`` distinct untried values dicts to score."""
        raise NotImplementedError

    def populate_space(self, trial_id):
        if self.prescreen is None:
            return super().populate_space(trial_id)
        return self.populate_prescreened(trial_id)

    def populate_prescreened(self, trial_id):
        """Draw, score, record, and propose the best-scored candidate (an oracle that defines
        its own ``populate_space`` calls this first when ``self.prescreen`` is set)."""
        score_fn, n = self.prescreen
        candidates = self.prescreen_candidates(n)
        if not candidates:
            return {"status": internals.TrialStatus.STOPPED, "values": None}
        if hasattr(score_fn, "observe"):  # a score that learns from the finished trials
            score_fn.observe(*finished_trials(self))
        scores = [float(s) for s in score_fn([dict(c) for c in candidates])]
        if len(scores) != len(candidates):
            raise ValueError(f"prescreen score_fn returned {len(scores)} scores for {len(candidates)} candidates")
        chosen = pick_best(scores)
        self.prescreen_log.append({
            "trial_id": trial_id, "chosen": chosen,
            "candidates": [{"values": jsonable(c), "score": s if math.isfinite(s) else None}
                           for c, s in zip(candidates, scores)]})
        return {"status": internals.TrialStatus.RUNNING, "values": candidates[chosen]}

    def prescreen_entry(self, trial_id: str) -> dict | None:
        """The prescreen that created ``trial_id`` (None if it was not prescreened)."""
        for entry in self.prescreen_log:
            if entry["trial_id"] == trial_id:
                return entry
        return None

    # -- state -------------------------------------------------------------------------------
    def get_state(self):
        state = super().get_state()
        state["prescreen"] = {"log": jsonable(self.prescreen_log)}
        return state

    def set_state(self, state):
        super().set_state(state)
        self.prescreen_log = list((state.get("prescreen") or {}).get("log", []))

    def rebuild_state(self):
        # Only oracle.json held the log: a rebuilt oracle starts a new one (the trials remain).
        super().rebuild_state()
        self.prescreen_log = []


class PrescreenRandomSearchOracle(PrescreenMixin, atomic_builtin_oracle("random")):
    """Keras Tuner's random search (atomic state files) with prescreening: each proposal
    scores ``n`` distinct untried uniform samples and proposes the best-scored one."""

    def prescreen_candidates(self, n: int) -> list[dict]:
        # keras-tuner's random values already skip tried values (None once the space looks exhausted).
        return distinct_candidates(functools.partial(internals.random_values, self), n,
                                   functools.partial(internals.is_duplicate, self), attempts=4 * n)


def proxy_score_of(oracle, values: dict) -> dict:
    """``{"proxy_score": s}`` of the prescreen that chose ``values`` (empty where unknown,
    e.g. on a distributed worker, whose oracle is the chief's)."""
    key = values_key({k: v for k, v in values.items() if not k.startswith("tuner/")})
    for entry in reversed(getattr(oracle, "prescreen_log", [])):
        chosen = entry["candidates"][entry["chosen"]]
        if values_key(chosen["values"]) == key and chosen["score"] is not None:
            return {"proxy_score": float(chosen["score"])}
    return {}
