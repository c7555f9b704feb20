"""Predictor-guided local search (BANANAS-style) as a Keras Tuner oracle.

After ``initial_points`` random trials, every proposal

1. fits a cheap predictor to the finished trials: a bootstrapped ensemble of ridge regressions
   over the one-hot (and, for numbers, ordinal) encoding of the hyperparameter values
   (:class:`RewardModel`);
2. builds the candidates: every one-choice mutation of the ``parents`` best trials (the local
   search's neighbourhood, :func:`effscale.search.space.neighbours`) plus ``random_candidates``
   uniform samples, minus everything already tried;
3. proposes the best candidate by the acquisition: ``"ucb"``, the highest upper confidence
   bound ``mean + exploration * std`` of the ensemble's predictions, or ``"thompson"``, the
   highest prediction of one ensemble member drawn at random per proposal (a bootstrap Thompson
   sample; White et al., BANANAS, arXiv 1910.11858, rank mutations of the best architectures by
   an ensemble predictor and compare these acquisitions; local search with a predictor is the
   strongest simple baseline on tabular NAS benchmarks, White et al., arXiv 2005.02960).

Cost-aware (``cost_fn`` and ``reward`` given, as ``run_search`` does for multiply-adds and
parameters): the ensemble predicts *accuracy*, recovered from each finished trial's reward and
its exactly known cost (``reward / reward(1, cost)``), and a candidate's predicted reward is
``reward(predicted accuracy, exact cost)``, so the model never has to learn the cost term.

The random generator is the only state besides the trials (the model is refitted from the
trials each proposal): saved and restored with the tuner.

>>> import keras_tuner
>>> from effscale.search.space import SearchSpace
>>> oracle = PredictorOracle(objective=keras_tuner.Objective("reward", "max"), max_trials=4,
...     hyperparameters=SearchSpace("tiny", open=("kernel",)).hyperparameters(), seed=1)
>>> oracle.initial_points
10
"""

from __future__ import annotations

import math

import numpy as np
import keras_tuner
from effscale.search import _keras_tuner as internals

from effscale.common.errors import UserError
from effscale.search.oracles.base import AtomicStateMixin, finished_trials, jsonable
from effscale.search.space import discrete_values, neighbours, sample_values


class Encoder:
    """Values dicts -> feature rows: per hyperparameter a one-hot block over its values (all
    zeros when inactive) and, for numeric values, one ordinal column (-1 when inactive).

    >>> import keras_tuner
    >>> hp = keras_tuner.HyperParameters()
    >>> _ = hp.Choice("act", ["relu", "tanh"]), hp.Choice("units", [8, 16, 32])
    >>> Encoder(hp).encode([{"act": "tanh", "units": 32}]).tolist()
    [[0.0, 1.0, 0.0, 0.0, 1.0, 2.0]]
    """

    def __init__(self, hyperparameters):
        self.columns = []  # (name, choices, numeric, first column)
        width = 0
        for hp in hyperparameters.space:
            choices = discrete_values(hp)
            numeric = all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in choices)
            self.columns.append((hp.name, choices, numeric, width))
            width += len(choices) + numeric
        self.width = width

    def encode(self, values_list, memo: dict | None = None) -> np.ndarray:
        """The feature rows; with ``memo`` (a dict kept by the caller) a values dict already
        encoded, the same object, is not encoded again (a search's finished trials)."""
        if memo is not None:
            missing = [v for v in values_list if id(v) not in memo]
            if missing:
                for values, row in zip(missing, self.encode(missing)):
                    memo[id(values)] = (values, row)  # holding values keeps its id unique
            return np.array([memo[id(v)][1] for v in values_list]).reshape(len(values_list), self.width)
        out = np.zeros((len(values_list), self.width))
        rows = np.arange(len(values_list))
        for name, choices, numeric, first in self.columns:
            lookup = {_key(c): i for i, c in enumerate(choices)}
            index = np.array([lookup.get(_key(v[name]), -1) if name in v else -1 for v in values_list], dtype=int)
            active = index >= 0
            out[rows[active], first + index[active]] = 1.0
            if numeric:
                out[:, first + len(choices)] = index
        return out


def _key(value):
    return (type(value) is bool, value)


_BLAS: dict = {}


def _one_blas_thread():
    """One BLAS thread: the matrices are tiny, and on a busy machine BLAS threads only wait for
    each other (a 1,000-trial fit took seconds instead of milliseconds). The controller that
    finds the BLAS libraries is built once (that takes tens of milliseconds)."""
    from threadpoolctl import ThreadpoolController  # a scikit-learn dependency

    if "controller" not in _BLAS:
        _BLAS["controller"] = ThreadpoolController()
    return _BLAS["controller"].limit(limits=1, user_api="blas")


class RewardModel:
    """An ensemble predictor of the reward: ``members`` ridge regressions (penalty ``ridge``) on
    the encoded values, each fitted to a bootstrap resample of the finished trials, in closed
    form (a few milliseconds at 1,000 trials); the spread of their predictions is the
    uncertainty. ``cost_fn(values) -> cost`` and ``reward`` (an
    :class:`effscale.search.objectives.Reward`) make it cost-aware (see the module docstring).

    >>> import keras_tuner
    >>> hp = keras_tuner.HyperParameters()
    >>> _ = hp.Choice("units", [8, 16, 32, 64])
    >>> model = RewardModel(hp).fit([{"units": u} for u in (8, 16, 32, 64)] * 3, [1, 2, 3, 4] * 3, seed=0)
    >>> mean, std = model.predict([{"units": 8}, {"units": 64}])
    >>> bool(mean[1] > mean[0])
    True
    """

    def __init__(self, hyperparameters, cost_fn=None, reward=None, members: int = 16, ridge: float = 1.0):
        if (cost_fn is None) != (reward is None):
            raise UserError("a cost-aware predictor needs both cost_fn and reward")
        self.encoder = Encoder(hyperparameters)
        self.cost_fn, self.reward, self.members, self.ridge = cost_fn, reward, members, ridge
        self.weights = None

    def factor(self, values_list) -> np.ndarray:
        """What the reward multiplies accuracy by for each candidate (1 when not cost-aware)."""
        if self.reward is None:
            return np.ones(len(values_list))
        return np.array([self.reward(1.0, float(self.cost_fn(v))) for v in values_list])

    def fit(self, values_list, scores, seed: int = 0, memo: dict | None = None) -> "RewardModel":
        with _one_blas_thread():
            return self._fit(self.encoder.encode(values_list, memo), values_list, scores, seed)

    def _fit(self, x, values_list, scores, seed) -> "RewardModel":
        y = np.asarray(scores, dtype=float) / self.factor(values_list)
        rng = np.random.default_rng(seed)
        weights = []
        for _ in range(self.members):  # ridge regression on a bootstrap resample, in closed form
            pick = rng.integers(len(y), size=len(y))
            xs, ys = x[pick], y[pick]
            mean_x, mean_y = xs.mean(axis=0), ys.mean()
            centred = xs - mean_x
            w = np.linalg.solve(centred.T @ centred + self.ridge * np.eye(x.shape[1]), centred.T @ (ys - mean_y))
            weights.append(np.append(w, mean_y - mean_x @ w))
        self.weights = np.stack(weights, axis=1)  # (features + 1, members)
        return self

    def predict(self, values_list) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation over the ensemble of each candidate's predicted reward."""
        per_member, factor = self._per_member(values_list)
        return per_member.mean(axis=1) * factor, per_member.std(axis=1) * np.abs(factor)

    def sample(self, values_list, member: int) -> np.ndarray:
        """One ensemble member's predicted reward of each candidate (a Thompson sample)."""
        per_member, factor = self._per_member(values_list)
        return per_member[:, member] * factor

    def _per_member(self, values_list):
        x = self.encoder.encode(values_list)
        return np.hstack([x, np.ones((len(x), 1))]) @ self.weights, self.factor(values_list)


ACQUISITIONS = ("ucb", "thompson")


class PredictorOracle(AtomicStateMixin, keras_tuner.Oracle):
    """Predictor-guided local search over a finite Keras Tuner space (see the module docstring).

    Args:
        initial_points: random trials before the first fit (at least 2).
        parents: how many of the best finished trials the neighbourhood is built around.
        random_candidates: uniform samples added to the neighbourhood each proposal.
        acquisition: ``"thompson"`` (one member's prediction, the default: ahead of UCB and of
            regularized evolution on both tabular tables, docs/benchmarks.md) or ``"ucb"``
            (mean + exploration * std).
        exploration: weight of the ensemble's standard deviation in the UCB acquisition.
        members: ensemble size.
        cost_fn, reward: make the predictor cost-aware (both or neither).
        Other keyword arguments (``objective``, ``hyperparameters``, ``seed``, ...) go to
        ``keras_tuner.Oracle``.
    """

    #: random draws tried before giving up when the space looks exhausted
    max_collisions = 50

    def __init__(self, max_trials=20, initial_points=10, parents=10, random_candidates=100, exploration=0.5,
                 members=16, cost_fn=None, reward=None, acquisition="thompson", **kwargs):
        super().__init__(max_trials=max_trials, **kwargs)
        for name, value, low in (("initial_points", initial_points, 2), ("parents", parents, 1),
                                 ("random_candidates", random_candidates, 0), ("members", members, 2)):
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= low):
                raise UserError(f"{name} must be an integer >= {low}, got {value!r}")
        if not (isinstance(exploration, (int, float)) and math.isfinite(exploration) and exploration >= 0):
            raise UserError(f"exploration must be a non-negative number, got {exploration!r}")
        if acquisition not in ACQUISITIONS:
            raise UserError(f"acquisition must be one of {', '.join(ACQUISITIONS)}, got {acquisition!r}")
        self.acquisition = acquisition
        self.initial_points, self.parents, self.random_candidates = initial_points, parents, random_candidates
        self.exploration, self.members = float(exploration), members
        self.cost_fn, self.reward = cost_fn, reward
        self._rng = np.random.default_rng(self.seed)
        self._encoded: dict = {}  # the finished trials' feature rows, encoded once

    # -- search ------------------------------------------------------------------------------
    def _tried(self, values) -> bool:
        """Whether ``values`` (an architecture) was proposed before; subclasses that add keys
        such as ``tuner/epochs`` to a trial redefine what "the same candidate" means."""
        return internals.values_hash(self, values) in internals.tried_hashes(self)

    def _random(self):
        for _ in range(self.max_collisions):
            values = sample_values(self.hyperparameters, self._rng)
            if not self._tried(values):
                return values
        return internals.random_values(self)  # keras-tuner's own: None when the space looks exhausted

    def candidates(self, finished: list[dict], scores: list[float]) -> list[dict]:
        """The untried neighbours of the best ``parents`` trials plus untried random samples."""
        order = np.argsort(-np.asarray(scores), kind="stable")[: self.parents]
        pool = [n for i in order for n in neighbours(self.hyperparameters, finished[i], self._rng)]
        pool += [sample_values(self.hyperparameters, self._rng) for _ in range(self.random_candidates)]
        seen, out = set(), []
        for values in pool:
            digest = internals.values_hash(self, values)
            if digest not in seen and not self._tried(values):
                seen.add(digest)
                out.append(values)
        return out

    def propose(self, finished: list[dict], scores: list[float], memo: dict | None = None) -> dict | None:
        """The model's pick among :meth:`candidates` for a model fitted to ``finished`` /
        ``scores``; None before ``initial_points`` results (or while they are all equal) or when
        every candidate was tried."""
        if len(finished) < self.initial_points or len(set(scores)) < 2:
            return None
        pool = self.candidates(finished, scores)
        if not pool:
            return None
        model = RewardModel(self.hyperparameters, self.cost_fn, self.reward, self.members)
        model.fit(finished, scores, seed=int(self._rng.integers(2**31)), memo=memo)
        if self.acquisition == "thompson":
            return pool[int(np.argmax(model.sample(pool, int(self._rng.integers(self.members)))))]
        mean, std = model.predict(pool)
        return pool[int(np.argmax(mean + self.exploration * std))]

    def populate_space(self, trial_id):
        finished, scores = finished_trials(self)
        values = self.propose(finished, scores, memo=self._encoded)
        if values is None:
            values = self._random()
        if values is None:
            return {"status": internals.TrialStatus.STOPPED, "values": None}
        return {"status": internals.TrialStatus.RUNNING, "values": values}

    # -- state -------------------------------------------------------------------------------
    def get_state(self):
        state = super().get_state()
        state["predictor"] = {"rng": jsonable(self._rng.bit_generator.state)}
        return state

    def set_state(self, state):
        super().set_state(state)
        self._rng = np.random.default_rng()
        self._rng.bit_generator.state = state["predictor"]["rng"]

    def rebuild_state(self):
        super().rebuild_state()
        self._rng = np.random.default_rng([self.seed, len(self.trials)])
