"""Multi-fidelity search: asynchronous successive halving (ASHA) over training epochs, with
new candidates proposed by the cost-aware predictor, as a Keras Tuner oracle.

Rungs train for ``rung_epochs(max_epochs, eta, min_epochs)`` epochs, e.g. 1, 5 and 15 epochs
for ``max_epochs=15, eta=3``: the top rung is the schedule the result is wanted at (the family
passes its members' training epochs), the lower ones cheaper by a factor of ``eta`` each. Every
proposal (Li et al., "A System for Massively Parallel Hyperparameter Tuning", arXiv 1810.05934,
Algorithm 2) first looks for a promotion, from the rung below the top downwards: a finished
candidate in the top ``1 / eta`` of its rung's finished results, not yet trained at the next
rung, is trained there. Only when no candidate is promotable does a new one start at the
cheapest rung. That new candidate is not random (as in BOHB, Falkner et al., arXiv 1807.01774,
whose model is fitted on the highest budget with enough results): once ``initial_points``
results exist at some rung, the predictor of :mod:`effscale.search.oracles.predictor` is fitted
to the highest such rung's results and picks among mutations of that rung's best and random
samples, by a Thompson sample (cost-aware when ``cost_fn`` and ``reward`` are given).

A trial's values carry its fidelity: ``tuner/epochs`` (what
:class:`effscale.search.trial.TrialRunner` trains for), ``tuner/rung`` and ``tuner/parent``
(the trial it was promoted from), so every rung's result is one row of ``trials.csv`` (its
``epochs`` column) and the oracle's state is rebuilt from the trials alone: a resume, a chief
serving workers and a reloaded project all see the same ladder. ``max_trials`` counts trainings
at every rung.

>>> rung_epochs(15, 3), rung_epochs(1, 3), rung_epochs(27, 3), rung_epochs(20, 4, 2)
((1, 5, 15), (1,), (1, 3, 9, 27), (2, 5, 20))
>>> promotable([("a", 0.9), ("b", 0.5), ("c", 0.7)], eta=3, promoted=set())
'a'
>>> promotable([("a", 0.9), ("b", 0.5), ("c", 0.7)], eta=3, promoted={"a"}) is None
True
"""

from __future__ import annotations

import math

from effscale.common.errors import UserError
from effscale.search import _keras_tuner as trial_module
from effscale.search.oracles.prescreen import values_key
from effscale.search.oracles.predictor import PredictorOracle


def rung_epochs(max_epochs: int, eta: int = 3, min_epochs: int = 1) -> tuple[int, ...]:
    """The epochs of each rung, cheapest first: ``max_epochs / eta**k`` rounded down, at least
    ``min_epochs``, the top rung exactly ``max_epochs``; rungs that would repeat a count are
    dropped."""
    epochs, k = [], 0
    while True:
        value = max(min_epochs, max_epochs // eta ** k)
        if epochs and value >= epochs[-1]:
            break
        epochs.append(value)
        if value == min_epochs:
            break
        k += 1
    return tuple(reversed(epochs))


def promotable(results: list[tuple[str, float]], eta: int, promoted: set) -> str | None:
    """The best of the top ``floor(n / eta)`` of one rung's finished ``(key, score)`` results
    that is not in ``promoted`` (ASHA's promotion rule), or None."""
    ranked = sorted(results, key=lambda item: -item[1])[: len(results) // eta]
    for key, _ in ranked:
        if key not in promoted:
            return key
    return None


class SuccessiveHalvingOracle(PredictorOracle):
    """ASHA over epochs with predictor-proposed new candidates (see the module docstring).

    Args:
        max_epochs: epochs of the top rung (the final schedule).
        eta: the reduction factor between rungs (>= 2) and the promoted fraction (1 / eta).
        min_epochs: epochs of the cheapest rung.
        Other arguments as :class:`~effscale.search.oracles.PredictorOracle` (``initial_points``
        counts results at one rung) and ``keras_tuner.Oracle``.
    """

    def __init__(self, objective=None, max_trials=20, max_epochs=9, eta=3, min_epochs=1, **kwargs):
        for name, value, low in (("max_epochs", max_epochs, 1), ("eta", eta, 2), ("min_epochs", min_epochs, 1)):
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= low):
                raise UserError(f"{name} must be an integer >= {low}, got {value!r}")
        if min_epochs > max_epochs:
            raise UserError(f"min_epochs ({min_epochs}) must not exceed max_epochs ({max_epochs})")
        kwargs.setdefault("initial_points", 6)
        super().__init__(objective=objective, max_trials=max_trials, **kwargs)
        self.max_epochs, self.eta, self.min_epochs = max_epochs, eta, min_epochs
        self.rungs = rung_epochs(max_epochs, eta, min_epochs)
        self._started: set = set()  # architectures with a trial at the cheapest rung

    # -- the ladder, read from the trials ----------------------------------------------------
    def ladder(self) -> dict:
        """Per rung: ``results`` (key, score) of its finished trials, ``values`` by key, and
        ``started`` (keys with a trial at that rung in any state)."""
        sign = 1.0 if self.objective.direction == "max" else -1.0
        ladder = {r: {"results": [], "values": {}, "started": set()} for r in range(len(self.rungs))}
        for trial in self.trials.values():
            values = trial.hyperparameters.values
            if not values:
                continue
            rung = int(values.get("tuner/rung", 0))
            if rung not in ladder:
                continue
            architecture = {k: v for k, v in values.items() if not k.startswith("tuner/")}
            key = values_key(architecture)
            ladder[rung]["started"].add(key)
            ladder[rung]["values"][key] = architecture
            if trial.status == "COMPLETED" and trial.score is not None and math.isfinite(trial.score):
                ladder[rung]["results"].append((key, sign * float(trial.score)))
        return ladder

    def _tried(self, values) -> bool:
        """An architecture counts as tried once it started at the cheapest rung."""
        return values_key({k: v for k, v in values.items() if not k.startswith("tuner/")}) in self._started

    def _at(self, rung: int, architecture: dict, parent: str | None = None) -> dict:
        values = {**architecture, "tuner/epochs": self.rungs[rung], "tuner/rung": rung}
        if parent is not None:
            values["tuner/parent"] = parent
        return {"status": trial_module.TrialStatus.RUNNING, "values": values}

    def _trial_of(self, rung: int, key: str) -> str | None:
        for trial_id, trial in self.trials.items():
            values = trial.hyperparameters.values or {}
            if int(values.get("tuner/rung", -1)) == rung and \
                    values_key({k: v for k, v in values.items() if not k.startswith("tuner/")}) == key:
                return trial_id
        return None

    def populate_space(self, trial_id):
        ladder = self.ladder()
        for rung in range(len(self.rungs) - 2, -1, -1):  # promote from the highest rung first
            key = promotable(ladder[rung]["results"], self.eta, ladder[rung + 1]["started"])
            if key is not None:
                return self._at(rung + 1, ladder[rung]["values"][key], parent=self._trial_of(rung, key))
        self._started = ladder[0]["started"]
        values = None
        for rung in range(len(self.rungs) - 1, -1, -1):  # the model: the highest rung with enough results
            results = ladder[rung]["results"]
            if len(results) >= self.initial_points:
                finished = [ladder[rung]["values"][key] for key, _ in results]
                values = self.propose(finished, [score for _, score in results])
                break
        if values is None:
            values = self._random()
        if values is None:
            return {"status": trial_module.TrialStatus.STOPPED, "values": None}
        return self._at(0, {k: v for k, v in values.items() if not k.startswith("tuner/")})

    # -- state: the ladder is in the trials; the rest is the predictor's ---------------------------
    def get_state(self):
        state = super().get_state()
        state["halving"] = {"rungs": list(self.rungs), "eta": self.eta}
        return state

    def set_state(self, state):
        super().set_state(state)
        saved = state.get("halving", {})
        if saved and tuple(saved["rungs"]) != self.rungs:
            raise UserError(f"this project's search trained rungs of {saved['rungs']} epochs; now "
                            f"{list(self.rungs)}: use the same --epochs and eta, or a new project folder")

