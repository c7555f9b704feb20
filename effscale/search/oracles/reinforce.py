"""A REINFORCE policy-gradient controller as a Keras Tuner oracle, in the spirit of MnasNet.

The controller is a factorized policy: one softmax over the values of each categorical choice
of the space (MnasNet used an RNN trained with PPO; with a factorized space the choices are
sampled independently here). After every finished trial the logits take one step of

    theta += lr * (A * grad log pi(a) + entropy_weight * grad H(pi)),   A = (R - b) / s

where R is the trial's score (a FAILED trial scores ``failed_reward``), b an exponential moving
average of past rewards (the baseline), s the square root of an exponential moving average of
(R - b)^2 (the advantage's running scale) and H the policy's entropy (a bonus that keeps it
exploring). Dividing by s makes the search independent of the objective's scale: a reward in
percent instead of a fraction proposes the same candidates (with the raw advantage, a percent
objective takes 100x larger steps and collapses the policy within a few dozen trials).
``normalize=False`` restores the raw advantage ``R - b``. Logits, baseline, scale and random
state are oracle state, saved and restored with the tuner.

>>> import numpy as np
>>> logits = np.zeros(3)
>>> step = policy_gradient(logits, chosen=0, advantage=1.0, learning_rate=0.5, entropy_weight=0.0)
>>> bool(step[0] > 0 > step[1]), round(float(step.sum()), 9)
(True, 0.0)
"""

from __future__ import annotations

import math

import numpy as np
import keras_tuner
from effscale.search import _keras_tuner as internals

from effscale.common.errors import UserError
from effscale.search.oracles.base import AtomicStateMixin, jsonable
from effscale.search.space import discrete_values, sample_values


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=float) - np.max(logits)
    e = np.exp(z)
    return e / e.sum()


def policy_gradient(logits: np.ndarray, chosen: int, advantage: float, learning_rate: float,
                    entropy_weight: float) -> np.ndarray:
    """The logits' step for one decision: REINFORCE plus the entropy bonus's gradient.

    With zero advantage the step only raises entropy (flattens the policy):

    >>> step = policy_gradient(np.array([2.0, 0.0]), chosen=0, advantage=0.0, learning_rate=1.0,
    ...                        entropy_weight=1.0)
    >>> bool(step[0] < 0 < step[1])
    True
    """
    p = softmax(logits)
    onehot = np.zeros_like(p)
    onehot[chosen] = 1.0
    entropy = -float(np.sum(p * np.log(p + 1e-12)))
    entropy_grad = -p * (np.log(p + 1e-12) + entropy)
    return learning_rate * (advantage * (onehot - p) + entropy_weight * entropy_grad)


def _index(choices, value) -> int:
    for i, c in enumerate(choices):
        if c == value and isinstance(c, bool) == isinstance(value, bool):
            return i
    raise ValueError(f"{value!r} not in {choices}")


class ReinforceOracle(AtomicStateMixin, keras_tuner.Oracle):
    """Policy-gradient search over a finite Keras Tuner space.

    Args:
        learning_rate: step size of the logits (per unit of normalized advantage).
        baseline_decay: the moving averages (baseline and advantage scale) keep this fraction
            of their old value.
        normalize: divide the advantage by its running scale (see the module docstring).
        entropy_weight: weight of the entropy bonus.
        failed_reward: the reward a FAILED trial (hard limit, NaN loss, out of memory) teaches.
        Other keyword arguments (``hyperparameters``, ``seed``, ``max_consecutive_failed_trials``,
        ...) go to ``keras_tuner.Oracle``.
    """

    #: samples tried before falling back to a random candidate when every sample was tried already
    max_collisions = 50

    def __init__(self, objective=None, max_trials=20, learning_rate=0.2, baseline_decay=0.9,
                 entropy_weight=0.01, failed_reward=0.0, normalize=True, **kwargs):
        super().__init__(objective=objective, max_trials=max_trials, **kwargs)
        for name, value in (("learning_rate", learning_rate), ("entropy_weight", entropy_weight)):
            if not (isinstance(value, (int, float)) and value >= 0 and math.isfinite(value)):
                raise UserError(f"{name} must be a non-negative number, got {value!r}")
        if not (isinstance(baseline_decay, (int, float)) and 0 <= baseline_decay < 1):
            raise UserError(f"baseline_decay must be in [0, 1), got {baseline_decay!r}")
        self.learning_rate = float(learning_rate)
        self.baseline_decay = float(baseline_decay)
        self.entropy_weight = float(entropy_weight)
        self.failed_reward = float(failed_reward)
        self.normalize = bool(normalize)
        self.logits: dict[str, list[float]] = {}
        self.baseline: float | None = None
        self.scale_sq: float | None = None  # moving average of (R - b)^2
        self.updates = 0
        self._rng = np.random.default_rng(self.seed)

    # -- policy ------------------------------------------------------------------------------
    def _logits_for(self, hp) -> np.ndarray:
        size = len(discrete_values(hp))
        if hp.name not in self.logits or len(self.logits[hp.name]) != size:
            self.logits[hp.name] = [0.0] * size
        return np.asarray(self.logits[hp.name], dtype=float)

    def probabilities(self) -> dict[str, list[float]]:
        """The controller's current distribution over each choice's values."""
        return {hp.name: softmax(self._logits_for(hp)).tolist() for hp in self.hyperparameters.space}

    def _pick(self, hp, choices, rng):
        p = softmax(self._logits_for(hp))
        return choices[int(rng.choice(len(choices), p=p))]

    def populate_space(self, trial_id):
        for _ in range(self.max_collisions):
            values = sample_values(self.hyperparameters, self._rng, pick=self._pick)
            if not internals.is_duplicate(self, values):
                return {"status": internals.TrialStatus.RUNNING, "values": values}
        values = internals.random_values(self)
        if values is None:
            return {"status": internals.TrialStatus.STOPPED, "values": None}
        return {"status": internals.TrialStatus.RUNNING, "values": values}

    # -- learning ----------------------------------------------------------------------------
    def learn(self, values: dict, reward: float) -> None:
        """One REINFORCE step from a sampled candidate and its reward."""
        advantage = reward - (reward if self.baseline is None else self.baseline)
        if self.baseline is not None:
            self.scale_sq = advantage ** 2 if self.scale_sq is None else \
                self.baseline_decay * self.scale_sq + (1 - self.baseline_decay) * advantage ** 2
        if self.normalize:
            advantage = advantage / math.sqrt(self.scale_sq) if self.scale_sq else 0.0
        for hp in self.hyperparameters.space:
            if hp.name not in values:
                continue  # inactive for this candidate: it took no decision here
            choices = discrete_values(hp)
            try:
                chosen = _index(choices, values[hp.name])
            except ValueError:
                continue
            logits = self._logits_for(hp)
            logits = logits + policy_gradient(logits, chosen, advantage, self.learning_rate, self.entropy_weight)
            self.logits[hp.name] = [float(x) for x in logits]
        self.baseline = reward if self.baseline is None else \
            self.baseline_decay * self.baseline + (1 - self.baseline_decay) * reward
        self.updates += 1

    def _reward_of(self, trial) -> float | None:
        if trial.status == internals.TrialStatus.FAILED:
            return self.failed_reward
        if trial.status != internals.TrialStatus.COMPLETED:
            return None
        score = trial.metrics.get_best_value(self.objective.name) if trial.score is None else trial.score
        if score is None or not np.isfinite(score):
            return None
        return float(score) if self.objective.direction == "max" else -float(score)

    @keras_tuner.synchronized
    def end_trial(self, trial):
        # Learn before the base class saves, so controller and trial land in one atomic write.
        stored = self.trials[trial.trial_id]
        probe = internals.Trial(stored.hyperparameters, trial_id=trial.trial_id, status=trial.status)
        probe.metrics = stored.metrics
        reward = self._reward_of(probe)
        if reward is not None:
            values = {k: v for k, v in trial.hyperparameters.values.items() if not k.startswith("tuner/")}
            self.learn(values, reward)
        super().end_trial(trial)

    # -- state -------------------------------------------------------------------------------
    def get_state(self):
        state = super().get_state()
        state["reinforce"] = {"logits": jsonable(self.logits), "baseline": self.baseline,
                              "scale_sq": self.scale_sq, "updates": self.updates,
                              "rng": jsonable(self._rng.bit_generator.state)}
        return state

    def set_state(self, state):
        super().set_state(state)
        saved = state["reinforce"]
        self.logits = {k: [float(x) for x in v] for k, v in saved["logits"].items()}
        self.baseline = saved["baseline"]
        self.scale_sq = saved.get("scale_sq")
        self.updates = saved["updates"]
        self._rng = np.random.default_rng()
        self._rng.bit_generator.state = saved["rng"]

    def rebuild_state(self):
        """Replay every finished trial through the controller, in the order they ended."""
        super().rebuild_state()
        self.logits, self.baseline, self.scale_sq, self.updates = {}, None, None, 0
        for trial_id in self.end_order:
            trial = self.trials[trial_id]
            if trial.status == internals.TrialStatus.COMPLETED and trial.score is None:
                self.score_trial(trial)
            reward = self._reward_of(trial)
            if reward is not None:
                self.learn({k: v for k, v in trial.hyperparameters.values.items()
                            if not k.startswith("tuner/")}, reward)
        self._rng = np.random.default_rng([self.seed, len(self.trials)])
