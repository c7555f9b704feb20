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
    seeds: int = 1                # training seeds per trial: the objective is their mean
    reevaluate: dict = field(default_factory=dict)  # {"top_k", "seeds"} of the re-evaluation stage
    train_fraction: float | None = None  # class-balanced fraction of the training split

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def mismatch(self, saved: dict) -> str | None:
        mine = self.to_dict()
        defaults = SearchConfig(**{k: None for k in ("space", "oracle", "reward", "limits", "proxy", "dataset",
                                                     "resolution", "width", "depth", "trials", "seed")}).to_dict()
        for key in sorted(set(mine) | set(saved)):
            if key == "trials" or (key not in saved and _normalize(mine[key]) == _normalize(defaults.get(key))):
                continue  # trials may grow; a key added since the project was made, at its default
            if _normalize(mine.get(key)) != _normalize(saved.get(key)):
                return key
        return None


def _normalize(value):
    from effscale.io import plain_json

    return plain_json(value)
