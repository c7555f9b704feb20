"""Regularized (aging) evolution as a Keras Tuner oracle (Real et al., arXiv 1802.01548).

The first ``population_size`` trials are random. After that each new candidate is a mutation
of one choice of the best of ``sample_size`` population members drawn uniformly at random with
replacement (a tournament, as in the paper's Algorithm 1); when a trial completes it joins the
population and the *oldest* member leaves.
Failed trials never join. The population and the random generator's state are oracle state:
saved with the tuner and restored on resume.

With ``prescreen=(score_fn, n)`` (:mod:`effscale.search.oracles.prescreen`) each proposal scores ``n``
distinct untried candidates and proposes the best-scored: ``n`` random samples while the
population fills, afterwards ``n`` distinct mutations of one tournament winner (all of its
untried mutations when it has fewer).

The selection and mutation logic is plain functions (:func:`tournament`,
:func:`effscale.search.space.mutate_values`) that test without a tuner.

>>> import keras_tuner, numpy as np
>>> from effscale.search.space import SearchSpace
>>> space = SearchSpace("tiny", open=("kernel", "se"))
>>> oracle = RegularizedEvolutionOracle(objective=keras_tuner.Objective("reward", "max"), max_trials=4,
...                                     hyperparameters=space.hyperparameters(), population_size=2,
...                                     sample_size=2, seed=1)
>>> oracle.population
[]
"""

from __future__ import annotations

import functools

import numpy as np
import keras_tuner
from effscale.search import _keras_tuner as internals

from effscale.common.errors import UserError
from effscale.search.oracles.base import AtomicStateMixin, jsonable
from effscale.search.oracles.prescreen import PrescreenMixin, distinct_candidates
from effscale.search.space import mutate_values, sample_values


def tournament(population: list[dict], sample_size: int, rng, maximize: bool = True) -> dict:
    """The best of ``sample_size`` members drawn uniformly with replacement (Real et al.,
    Algorithm 1: a member may be drawn twice, so even a tournament as large as the population
    does not always return the best member).

    >>> pop = [{"trial_id": str(i), "score": s, "values": {}} for i, s in enumerate([0.1, 0.9, 0.5])]
    >>> rng = np.random.default_rng(0)
    >>> tournament(pop, 1, rng)["trial_id"], tournament(pop, 50, rng)["trial_id"]
    ('2', '1')
    """
    if not population:
        raise ValueError("empty population")
    picks = rng.integers(len(population), size=sample_size)
    members = [population[int(i)] for i in sorted(picks)]
    key = (lambda m: m["score"]) if maximize else (lambda m: -m["score"])
    return max(members, key=key)


class RegularizedEvolutionOracle(PrescreenMixin, AtomicStateMixin, keras_tuner.Oracle):
    """Aging evolution over a finite Keras Tuner space (Choice / Boolean / Fixed / Int).

    Args:
        population_size: P, the number of members kept (the oldest leaves first).
        sample_size: S, the tournament size (S <= P), drawn with replacement.
        prescreen: ``(score_fn, n)`` to prescreen each proposal (see the module docstring).
        Other keyword arguments (``hyperparameters``, ``seed``, ``max_consecutive_failed_trials``,
        ...) go to ``keras_tuner.Oracle``.
    """

    #: mutations tried before falling back to a random candidate when every child was tried already
    max_collisions = 50

    def __init__(self, objective=None, max_trials=20, population_size=10, sample_size=3, prescreen=None,
                 **kwargs):
        super().__init__(objective=objective, max_trials=max_trials, prescreen=prescreen, **kwargs)
        if not (isinstance(population_size, int) and population_size >= 2):
            raise UserError(f"population_size must be an integer >= 2, got {population_size!r}")
        if not (isinstance(sample_size, int) and 1 <= sample_size <= population_size):
            raise UserError(f"sample_size must be an integer in 1..population_size, got {sample_size!r}")
        self.population_size = population_size
        self.sample_size = sample_size
        self.population: list[dict] = []   # oldest first: {"trial_id", "values", "score"}
        self._rng = np.random.default_rng(self.seed)

    # -- search ------------------------------------------------------------------------------
    @property
    def _maximize(self) -> bool:
        return self.objective.direction == "max"

    def populate_space(self, trial_id):
        if self.prescreen is not None:
            return self.populate_prescreened(trial_id)
        rng = self._rng
        for _ in range(self.max_collisions):
            if len(self.start_order) < self.population_size or not self.population:
                values = sample_values(self.hyperparameters, rng)
            else:
                parent = tournament(self.population, self.sample_size, rng, self._maximize)
                values = mutate_values(self.hyperparameters, parent["values"], rng)
            if not internals.is_duplicate(self, values):
                return {"status": internals.TrialStatus.RUNNING, "values": values}
        values = internals.random_values(self)  # keras-tuner's own: None when the space looks exhausted
        if values is None:
            return {"status": internals.TrialStatus.STOPPED, "values": None}
        return {"status": internals.TrialStatus.RUNNING, "values": values}

    def prescreen_candidates(self, n: int) -> list[dict]:
        rng, attempts = self._rng, self.max_collisions * n
        tried = functools.partial(internals.is_duplicate, self)
        if len(self.start_order) < self.population_size or not self.population:
            found = distinct_candidates(lambda: sample_values(self.hyperparameters, rng), n, tried, attempts)
        else:
            parent = tournament(self.population, self.sample_size, rng, self._maximize)
            found = distinct_candidates(lambda: mutate_values(self.hyperparameters, parent["values"], rng), n,
                                        tried, attempts)
        if not found:
            values = internals.random_values(self)
            found = [values] if values is not None else []
        return found

    def score_trial(self, trial):
        # Called inside end_trial before it saves, so the new member is in the same atomic write.
        super().score_trial(trial)
        if trial.score is not None and np.isfinite(trial.score):
            self._add_member(trial)

    def _add_member(self, trial) -> None:
        values = {k: v for k, v in trial.hyperparameters.values.items() if not k.startswith("tuner/")}
        self.population.append({"trial_id": trial.trial_id, "values": jsonable(values),
                                "score": float(trial.score)})
        while len(self.population) > self.population_size:
            self.population.pop(0)  # aging: the oldest leaves, whatever its score

    # -- state -------------------------------------------------------------------------------
    def get_state(self):
        state = super().get_state()
        state["evolution"] = {"population": jsonable(self.population),
                              "rng": jsonable(self._rng.bit_generator.state)}
        return state

    def set_state(self, state):
        super().set_state(state)
        evolution = state["evolution"]
        self.population = evolution["population"]
        self._rng = np.random.default_rng()
        self._rng.bit_generator.state = evolution["rng"]

    def rebuild_state(self):
        super().rebuild_state()
        self.population = []
        for trial_id in self.end_order:
            trial = self.trials[trial_id]
            if trial.status == internals.TrialStatus.COMPLETED and trial.score is not None:
                self._add_member(trial)
        self._rng = np.random.default_rng([self.seed, len(self.trials)])
