"""Bayesian optimization for finite spaces: Keras Tuner's Gaussian process, its GP-UCB rule,
scored over sampled points of the space instead of maximized in a continuous relaxation.

Keras Tuner's ``BayesianOptimizationOracle`` refits its GP with 20 optimizer restarts and runs
50 L-BFGS-B restarts through ``predict`` for every proposal, then rounds the continuous optimum
to the nearest discrete point, which often is one it already tried (it does not deduplicate):
over a minute per proposal once 1,000 trials have finished. :class:`SampledBayesianOracle`
keeps the model and the acquisition (Matern 5/2 GP with normalized targets, upper confidence
bound ``mu + beta * sigma``; ongoing trials hallucinated pessimistically, as upstream) and
changes only how the acquisition is maximized: it scores ``candidates`` points of the finite
space in one vectorized prediction (all of them when the space is at most that large; a fresh
random subset otherwise) and proposes the best-scored point that was **never tried** (a
proposal is never a repeat while untried points remain). ``gp_restarts`` (default 0) sets the
GP fit's optimizer restarts. The random state is oracle state, saved and restored.

>>> import keras_tuner
>>> from effscale.search.space import SearchSpace
>>> oracle = SampledBayesianOracle(objective=keras_tuner.Objective("reward", "max"), max_trials=4,
...     hyperparameters=SearchSpace("tiny", open=("kernel",)).hyperparameters(), seed=1)
>>> oracle.candidates, oracle.gpr.n_restarts_optimizer
(1000, 0)
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import keras_tuner
from effscale.search import _keras_tuner as internals

from effscale.common.errors import UserError
from effscale.search.oracles.base import AtomicStateMixin, jsonable
from effscale.search.space import discrete_values

MAX_GRID = 100_000  # a space up to this size is enumerated once; larger ones are sampled per dimension


class SampledBayesianOracle(AtomicStateMixin, internals.GaussianProcessHook,
                            keras_tuner.oracles.BayesianOptimizationOracle):
    """GP-UCB over sampled candidates of a finite space (see the module docstring).

    Args:
        candidates: points scored per proposal.
        gp_restarts: restarts of the GP's length-scale fit.
        Other arguments as ``keras_tuner.oracles.BayesianOptimizationOracle``
        (``num_initial_points``, ``alpha``, ``beta``, ...).
    """

    def __init__(self, *args, candidates: int = 1000, gp_restarts: int = 0, **kwargs):
        for name, value, low in (("candidates", candidates, 1), ("gp_restarts", gp_restarts, 0)):
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= low):
                raise UserError(f"{name} must be an integer >= {low}, got {value!r}")
        self.candidates, self.gp_restarts = candidates, gp_restarts
        self._grid = None
        super().__init__(*args, **kwargs)

    def adjust_gpr(self, gpr):
        gpr.n_restarts_optimizer = self.gp_restarts
        return gpr

    def _draw_candidates(self) -> np.ndarray:
        grids = [[hp.value_to_prob(v) for v in discrete_values(hp)] for hp in internals.nonfixed_space(self)]
        if math.prod(len(g) for g in grids) <= MAX_GRID:
            if self._grid is None:
                self._grid = np.array(list(itertools.product(*grids)), dtype=float).reshape(-1, len(grids))
            size = min(self.candidates, len(self._grid))
            return self._grid[internals.random_state(self).choice(len(self._grid), size=size, replace=False)]
        return np.stack([internals.random_state(self).choice(g, size=self.candidates) for g in grids], axis=1)

    def populate_space(self, trial_id):
        completed = sum(1 for t in self.trials.values() if t.status == "COMPLETED")
        if completed < (self.num_initial_points or max(3 * len(self.hyperparameters.space), 3)):
            return internals.random_populate_space(self)
        x, y = internals.vectorize_trials(self)  # y is negated when maximizing: smaller is better
        self.gpr.fit(np.nan_to_num(x, posinf=0, neginf=0), np.nan_to_num(y, posinf=0, neginf=0))
        candidates = self._draw_candidates()
        mu, sigma = self.gpr.predict(candidates, return_std=True)
        for index in np.argsort(mu - self.beta * sigma, kind="stable"):
            values = internals.vector_to_values(self, candidates[index])
            if not internals.is_duplicate(self, values):
                return {"status": internals.TrialStatus.RUNNING, "values": values}
        return internals.random_populate_space(self)  # every scored point was tried: a random untried one

    # -- state -------------------------------------------------------------------------------
    def get_state(self):
        state = super().get_state()
        state["sampled_bayesian"] = {"candidates": self.candidates, "gp_restarts": self.gp_restarts,
                                     "random_state": jsonable(internals.random_state(self).get_state(legacy=False))}
        return state

    def set_state(self, state):
        super().set_state(state)
        saved = state["sampled_bayesian"]
        self.candidates, self.gp_restarts = saved["candidates"], saved["gp_restarts"]
        self.gpr = internals.make_gpr(self)
        random_state = dict(saved["random_state"])
        random_state["state"] = {k: np.asarray(v, dtype=np.uint32) if k == "key" else v
                                 for k, v in random_state["state"].items()}
        internals.set_random_state(self, np.random.RandomState())
        internals.random_state(self).set_state(random_state)

    def rebuild_state(self):
        super().rebuild_state()
        internals.set_random_state(self, np.random.RandomState([self.seed or 0, len(self.trials)]))
