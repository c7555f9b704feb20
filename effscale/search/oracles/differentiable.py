"""Differentiable search as a Keras Tuner oracle: the supernet search runs (or resumes) when the
first trial is asked for, and its derived architectures become the trials.

Trial 0 is the argmax genotype; with ``max_trials`` k > 1 trials 1..k-1 are the next most
probable distinct architectures under the final probabilities. Each is then retrained from
scratch by the tuner like any other oracle's candidate, so ``trials.csv``, the Pareto front and
``effscale trials`` treat them the same. The derived values are oracle state (saved atomically),
so a resumed search does not search again.

The oracle needs the data and the proxy variant to search, which it does not own: the caller
gives it a ``search_fn(options) -> list of value dicts, best first`` (``run_search`` does this
with :func:`effscale.search.oneshot.differentiable.run_differentiable_search`).

>>> import keras_tuner
>>> from effscale.search.space import SearchSpace
>>> hp = SearchSpace("tiny", open=("kernel",), stages=(2,)).hyperparameters()
>>> oracle = DifferentiableOracle(objective=keras_tuner.Objective("reward", "max"), max_trials=2,
...                               hyperparameters=hp, supernet_epochs=2)
>>> oracle.search_fn = lambda options, k: [{"stage2/kernel": 5}, {"stage2/kernel": 3}][:k]
>>> oracle.populate_space("0")["values"], oracle.populate_space("1")["values"]
({'stage2/kernel': 5}, {'stage2/kernel': 3})
>>> oracle.populate_space("2")["status"]
'STOPPED'
"""

from __future__ import annotations

import keras_tuner
from effscale.search import _keras_tuner as trial_module

from effscale.common.errors import UserError
from effscale.search.oracles.base import AtomicStateMixin, jsonable


class DifferentiableOracle(AtomicStateMixin, keras_tuner.Oracle):
    """Proposes the architectures a supernet search derived (see the module docstring).

    Args:
        supernet_epochs: epochs of supernet training.
        arch_learning_rate: Adam learning rate of the architecture logits.
        cost_weight: weight of the expected-cost term in the architecture loss.
        warmup_epochs: first epochs that train the shared weights only.
        temperature: Gumbel-softmax temperature.
        Other keyword arguments go to ``keras_tuner.Oracle``.
    """

    def __init__(self, max_trials=1, supernet_epochs=3, arch_learning_rate=0.01, cost_weight=1.0, warmup_epochs=0,
                 temperature=1.0, **kwargs):
        super().__init__(max_trials=max_trials, **kwargs)
        if not (isinstance(supernet_epochs, int) and supernet_epochs >= 1):
            raise UserError(f"supernet_epochs must be a positive integer, got {supernet_epochs!r}")
        self.options = {"epochs": supernet_epochs, "arch_learning_rate": arch_learning_rate,
                        "cost_weight": cost_weight, "warmup_epochs": warmup_epochs, "temperature": temperature}
        self.search_fn = None
        self.derived: list[dict] = []

    def populate_space(self, trial_id):
        if not self.derived:
            if self.search_fn is None:
                raise UserError("differentiable oracle: no supernet search attached (use effscale.search.run_search)")
            self.derived = [jsonable(v) for v in self.search_fn(dict(self.options), self.max_trials or 1)]
        index = int(trial_id)
        if index >= len(self.derived):
            return {"status": trial_module.TrialStatus.STOPPED, "values": None}
        return {"status": trial_module.TrialStatus.RUNNING, "values": dict(self.derived[index])}

    def get_state(self):
        state = super().get_state()
        state["differentiable"] = {"derived": jsonable(self.derived)}
        return state

    def set_state(self, state):
        super().set_state(state)
        self.derived = state.get("differentiable", {}).get("derived", [])

    def rebuild_state(self):
        super().rebuild_state()
        self.derived = []  # the supernet's own checkpoint makes the search cheap to redo
