"""The MnasNet reward, hard limits and the Pareto front of (accuracy, cost).

MnasNet (arXiv 1807.11626) scores a candidate m by

    ACC(m) * (COST(m) / T) ** w,   w = alpha if COST(m) <= T else beta

with the *soft* constraint alpha = beta = -0.07 and the *hard* constraint alpha = 0, beta = -1.
COST is multiply-adds, parameters or measured latency (seconds per image).

>>> reward(0.8, 400e6, 400e6)
0.8
>>> round(reward(0.8, 800e6, 400e6), 6) == round(0.8 * 2 ** -0.07, 6)
True
>>> reward(0.8, 800e6, 400e6, constraint="hard")
0.4
>>> reward(0.8, 200e6, 400e6, constraint="hard")
0.8
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from effscale.common.errors import UserError
from effscale.model.scaling import Variant

if TYPE_CHECKING:
    from effscale.model.genotype import Genotype

COST_KINDS = ("macs", "params", "latency")
CONSTRAINTS = {"soft": (-0.07, -0.07), "hard": (0.0, -1.0)}
SOFT_W = -0.07


def _finite(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UserError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def exponents(constraint: str = "soft", alpha: float | None = None, beta: float | None = None) -> tuple[float, float]:
    """(alpha, beta) of a named constraint, with either overridden by the user.

    >>> exponents("hard"), exponents("soft", beta=-0.5)
    ((0.0, -1.0), (-0.07, -0.5))
    """
    if constraint not in CONSTRAINTS:
        raise UserError(f"unknown constraint {constraint!r}: expected one of {', '.join(CONSTRAINTS)}")
    a, b = CONSTRAINTS[constraint]
    a = a if alpha is None else _finite("alpha", alpha)
    b = b if beta is None else _finite("beta", beta)
    return a, b


def reward(accuracy: float, cost: float, target: float, constraint: str = "soft",
           alpha: float | None = None, beta: float | None = None) -> float:
    """The MnasNet reward of one candidate (see the module docstring)."""
    accuracy = _finite("accuracy", accuracy)
    cost = _finite("cost", cost)
    target = _finite("target", target)
    if target <= 0:
        raise UserError(f"target must be positive, got {target:g}")
    if cost <= 0:
        raise UserError(f"cost must be positive, got {cost:g}")
    a, b = exponents(constraint, alpha, beta)
    w = a if cost <= target else b
    return accuracy * (cost / target) ** w


@dataclass(frozen=True)
class Reward:
    """A reward specification: which cost, its target, and the exponents.

    >>> r = Reward("macs", 400e6, "hard")
    >>> r(0.9, 800e6)
    0.45
    >>> Reward.from_dict(r.to_dict()) == r
    True
    """

    cost: str = "macs"
    target: float = 400e6
    constraint: str = "soft"
    alpha: float | None = None
    beta: float | None = None

    def __post_init__(self):
        if self.cost not in COST_KINDS:
            raise UserError(f"unknown cost {self.cost!r}: expected one of {', '.join(COST_KINDS)}")
        target = _finite("target", self.target)
        if target <= 0:
            raise UserError(f"target must be positive, got {target:g}")
        exponents(self.constraint, self.alpha, self.beta)

    @property
    def exponents(self) -> tuple[float, float]:
        return exponents(self.constraint, self.alpha, self.beta)

    def __call__(self, accuracy: float, cost: float) -> float:
        return reward(accuracy, cost, self.target, self.constraint, self.alpha, self.beta)

    def to_dict(self) -> dict:
        return {"cost": self.cost, "target": self.target, "constraint": self.constraint,
                "alpha": self.alpha, "beta": self.beta}

    @classmethod
    def from_dict(cls, data: Mapping) -> "Reward":
        return cls(**data)


@dataclass(frozen=True)
class Limits:
    """Hard limits checked *before* a candidate is trained; a candidate over any of them is
    rejected (its trial FAILED with the reason) and the search goes on.

    >>> Limits(max_macs=1e6).violation({"macs": 2e6, "params": 10})
    'multiply-adds 2,000,000 exceed the limit 1,000,000'
    >>> Limits(max_macs=1e6).violation({"macs": 5e5}) is None
    True
    """

    max_macs: float | None = None
    max_params: float | None = None
    max_latency: float | None = None

    def __post_init__(self):
        for name in ("max_macs", "max_params", "max_latency"):
            value = getattr(self, name)
            if value is not None and _finite(name, value) <= 0:
                raise UserError(f"{name} must be positive, got {value:g}")

    _LABELS = {"macs": "multiply-adds", "params": "parameters", "latency": "latency (s/image)"}

    def violation(self, costs: Mapping[str, float]) -> str | None:
        """The first limit ``costs`` exceed, as a sentence, or None. Missing costs are skipped."""
        for kind, limit in (("macs", self.max_macs), ("params", self.max_params), ("latency", self.max_latency)):
            if limit is None or kind not in costs or costs[kind] is None:
                continue
            if costs[kind] > limit:
                fmt = (lambda v: f"{v:.4g}") if kind == "latency" else (lambda v: f"{int(v):,}")
                return f"{self._LABELS[kind]} {fmt(costs[kind])} exceed the limit {fmt(limit)}"
        return None

    @property
    def needs_latency(self) -> bool:
        return self.max_latency is not None

    def to_dict(self) -> dict:
        return {"max_macs": self.max_macs, "max_params": self.max_params, "max_latency": self.max_latency}

    @classmethod
    def from_dict(cls, data: Mapping | None) -> "Limits":
        return cls(**(data or {}))


def pareto_front(points: Iterable[Mapping], accuracy: str = "accuracy", cost: str = "cost") -> list[dict]:
    """The points no other point beats on both accuracy (higher) and cost (lower), sorted by
    cost. Points missing either value are skipped; ties keep the first seen.

    >>> pts = [{"id": 1, "accuracy": 0.9, "cost": 10}, {"id": 2, "accuracy": 0.8, "cost": 5},
    ...        {"id": 3, "accuracy": 0.7, "cost": 8}, {"id": 4, "accuracy": 0.95, "cost": 20}]
    >>> [p["id"] for p in pareto_front(pts)]
    [2, 1, 4]
    """
    usable = [dict(p) for p in points
              if p.get(accuracy) is not None and p.get(cost) is not None
              and math.isfinite(float(p[accuracy])) and math.isfinite(float(p[cost]))]
    usable.sort(key=lambda p: (float(p[cost]), -float(p[accuracy])))
    front: list[dict] = []
    best = -math.inf
    for point in usable:
        if float(point[accuracy]) > best:
            front.append(point)
            best = float(point[accuracy])
    return front


OBJECTIVE = "reward"  # the metric every oracle maximizes


def design_variant(genotype: Genotype) -> Variant:
    """The variant costs are counted at: the genotype itself, at its design resolution.

    >>> from effscale.model.zoo import get_genotype
    >>> design_variant(get_genotype("efficientnet-b0")).spec
    'w=1,d=1,r=224'
    """
    return Variant.explicit(1.0, 1.0, genotype.resolution)


def analytic_costs(genotype: Genotype, classes: int) -> dict:
    from effscale.model.cost import cost

    c = cost(genotype, design_variant(genotype), classes=classes)
    return {"macs": float(c.multiply_adds), "params": float(c.parameters)}


def exact_cost_fn(space, reward: Reward, classes):
    """``values -> cost`` of a candidate of ``space`` in the reward's units, known before training
    (analytic multiply-adds or parameters at its design resolution); None for latency, which is
    measured. ``classes``: a function returning the class count, called on first use.

    >>> from effscale.search.space import SearchSpace
    >>> space = SearchSpace("tiny", open=("kernel",))
    >>> exact_cost_fn(space, Reward("macs", 1e6), lambda: 10)(space.default_values()) > 1e6
    True
    """
    if reward.cost == "latency":
        return None
    known: dict = {}

    def cost_of(values):
        if "classes" not in known:
            known["classes"] = classes()
        return analytic_costs(space.to_genotype(values), known["classes"])[reward.cost]

    return cost_of
