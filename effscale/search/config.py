"""The typed input of a search: :class:`SearchConfig` (saved as ``search.json``'s ``config``) and
cost-target parsing.

>>> parse_target("400M")
400000000.0
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from effscale.errors import UserError

_SUFFIXES = {"k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "B": 1e9, "ms": 1e-3, "us": 1e-6, "s": 1.0}


def parse_target(text) -> float:
    """A positive cost target: a number, optionally with k / M / G (or B) or ms / us / s.

    >>> parse_target("400M"), parse_target("5ms"), parse_target(3e6)
    (400000000.0, 0.005, 3000000.0)
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        match = re.fullmatch(r"\s*([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(k|K|M|G|B|ms|us|s)?\s*", str(text))
        if not match:
            raise UserError(f"target {text!r}: expected a positive number, optionally with k, M, G, ms or us")
        value = float(match.group(1)) * _SUFFIXES.get(match.group(2) or "s", 1.0)
    if not (math.isfinite(value) and value > 0):
        raise UserError(f"target must be a positive number, got {text!r}")
    return value


@dataclass(frozen=True)
class SearchConfig:
    """Everything that defines a search. A rerun in the same project dir must match it
    (``trials`` may grow: the search then continues to the new budget)."""

    space: dict
    oracle: str
    reward: dict
    limits: dict
    proxy: dict
    dataset: str
    resolution: int
    width: float
    depth: float
    trials: int
    seed: int
    oracle_options: dict = field(default_factory=dict)
    latency: dict = field(default_factory=dict)
    prescreen: str | None = None


    @classmethod
    def create(cls, baseline="tiny", oracle: str = "evolution", cost: str = "macs", target=None,
               constraint: str = "soft", trials: int = 10, epochs: int = 1, dataset: str = "digits", seed: int = 0,
               resolution: int | None = None, width: float = 1.0, depth: float = 1.0, alpha: float | None = None,
               beta: float | None = None, max_macs: float | None = None, max_params: float | None = None,
               max_latency: float | None = None, open_choices=None, options: dict | None = None, stages=None,
               proxy=None, oracle_options: dict | None = None, latency: dict | None = None,
               prescreen: str | None = None) -> "SearchConfig":
        """A validated search of the MnasNet space around ``baseline`` (bad input raises UserError).

        ``cost`` is ``macs``, ``params`` or ``latency`` (seconds per image, LiteRT on this CPU),
        all counted for the genotype at its design resolution; ``target`` T in those units
        (default: the baseline's own cost). ``constraint`` ``soft`` (w = -0.07) or ``hard``
        (alpha 0, beta -1); ``alpha`` / ``beta`` override. ``max_macs`` / ``max_params`` /
        ``max_latency`` are hard limits checked before training. Candidates train ``epochs``
        epochs on ``dataset`` at ``width`` / ``depth`` x and ``resolution`` px (default: the
        baseline's, at most 64), with ``proxy`` (:class:`~effscale.search.proxy.ProxySettings` or
        its dict) if given. ``open_choices`` / ``options`` / ``stages`` configure the space
        (:class:`~effscale.search.space.SearchSpace`). ``oracle_options`` go to the oracle
        (:func:`~effscale.search.registry.make_oracle`); ``latency`` to the latency measurement.
        ``prescreen`` ``"PROXY:N"`` (random and evolution oracles): each trial trains the best of N
        untried candidates by a zero-cost proxy (:mod:`effscale.search.zero_cost`).

        >>> config = SearchConfig.create("tiny", oracle="random", trials=4, resolution=16)
        >>> config.oracle, config.trials, config.resolution, config.reward["cost"]
        ('random', 4, 16, 'macs')
        """
        from effscale.data import check_source
        from effscale.scaling import Variant
        from effscale.search.objectives import COST_KINDS, Limits, Reward, analytic_costs
        from effscale.search.proxy import ProxySettings
        from effscale.search.registry import check_oracle
        from effscale.search.space import SearchSpace
        from effscale.zoo import load_genotype

        genotype = load_genotype(baseline)
        check_oracle(oracle)
        if cost not in COST_KINDS:
            raise UserError(f"unknown cost {cost!r}: expected one of {', '.join(COST_KINDS)}")
        if not (isinstance(trials, int) and not isinstance(trials, bool) and trials >= 1):
            raise UserError(f"trials must be a positive integer, got {trials!r}")
        if not (isinstance(seed, int) and seed >= 0):
            raise UserError(f"seed must be a non-negative integer, got {seed!r}")
        if prescreen is not None:
            from effscale.search.zero_cost import parse_prescreen

            prescreen = "{}:{}".format(*parse_prescreen(prescreen))
            check_oracle(oracle, prescreen)
        space = SearchSpace(genotype, open=open_choices, options=options, stages=stages)
        if oracle == "differentiable":
            from effscale.search.differentiable import check_supported

            check_supported(space, cost, distributed=False)
        resolution = int(resolution) if resolution is not None else min(genotype.resolution, 64)
        if not 8 <= resolution <= 1024:
            raise UserError(f"resolution must be in 8..1024, got {resolution}")
        Variant("proxy", float(width), float(depth), resolution)  # validates width / depth
        settings = ProxySettings.from_dict(proxy) if isinstance(proxy, dict) else proxy
        settings = settings or ProxySettings(epochs=epochs, seed=seed)
        if proxy is None and not (isinstance(epochs, int) and epochs >= 1):
            raise UserError(f"epochs must be a positive integer, got {epochs!r}")
        if target is None:
            if cost == "latency":
                raise UserError("cost 'latency' needs an explicit target (seconds per image)")
            target = analytic_costs(genotype, 10)[cost]
        reward = Reward(cost, parse_target(target), constraint, alpha, beta)
        limits = Limits(max_macs, max_params, max_latency)
        latency = dict(latency or {"runs": 10, "warmup": 2, "threads": 1})
        check_source(dataset)
        return cls(space=space.to_dict(), oracle=oracle, reward=reward.to_dict(), limits=limits.to_dict(),
                   proxy=settings.to_dict(), dataset=str(dataset), resolution=resolution, width=float(width),
                   depth=float(depth), trials=trials, seed=seed, oracle_options=dict(oracle_options or {}),
                   latency=latency, prescreen=prescreen)

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def mismatch(self, saved: dict) -> str | None:
        mine = self.to_dict()
        for key in sorted(set(mine) | set(saved)):
            if key == "trials":
                continue
            if _normalize(mine.get(key)) != _normalize(saved.get(key)):
                return key
        return None


def _normalize(value):
    from effscale.io import plain_json

    return plain_json(value)
