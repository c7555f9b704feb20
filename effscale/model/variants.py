"""Variant spellings: a :class:`~effscale.model.scaling.Variant` from a published name, ``phi=X``, a
cost target (``macs=2e9``, ``params=5e6``: the phi whose variant comes closest) or
``w=..,d=..,r=..``, and whole families of them. Above the cost model, since a cost target is
solved with it.

>>> from effscale.model.zoo import get_genotype
>>> resolve_variant("b3", get_genotype("efficientnet-b0"))
Variant(name='b3', width=1.2, depth=1.4, resolution=300, dropout=0.3)
>>> [v.name for v in resolve_family("b0-b2", get_genotype("efficientnet-b0"))]
['b0', 'b1', 'b2']
"""

from __future__ import annotations

import math
import re

from effscale.model import cost as cost_module
from effscale.common.errors import UserError
from effscale.model.genotype import Genotype
from effscale.model.scaling import (DEFAULT_ALPHA, DEFAULT_BETA, DEFAULT_GAMMA, PHI_RANGE, PUBLISHED, Variant,
                              _check_coefficients, _parse_assignments, parse_variant, phi_variant,
                              published_table)


def resolve_variant(spec: "str | Variant", genotype: Genotype) -> Variant:
    """A Variant from any of the four spellings (see :mod:`effscale.model.scaling`)."""
    if isinstance(spec, str) and spec.strip().lower().split("=", 1)[0] in ("macs", "params"):
        text = spec.strip().lower().replace(" ", "")
        head = text.split("=", 1)[0]
        values = _parse_assignments(text, {head: float, "alpha": float, "beta": float, "gamma": float})
        return cost_target_variant(genotype, head, values.pop(head), **values)
    return parse_variant(spec, genotype)


def cost_target_variant(genotype: Genotype, cost: str, target: float, alpha: float = DEFAULT_ALPHA,
                        beta: float = DEFAULT_BETA, gamma: float = DEFAULT_GAMMA) -> Variant:
    """The phi-variant whose multiply-adds (or parameters) come closest to ``target``.

    Cost grows monotonically with phi up to rounding steps, so a bisection brackets the
    target and the closer of the two bracketing variants wins.

    >>> from effscale.model.zoo import get_genotype
    >>> v = cost_target_variant(get_genotype("efficientnet-b0"), "macs", 1.0e9)
    >>> v.name, 0.9e9 < cost_module.multiply_adds(get_genotype("efficientnet-b0"), v) < 1.1e9
    ('macs1e+09', True)
    """
    if cost not in ("macs", "params"):
        raise UserError(f"cost {cost!r}: expected macs or params")
    if not (isinstance(target, (int, float)) and math.isfinite(target) and target > 0):
        raise UserError(f"{cost} target must be a positive number, got {target!r}")
    _check_coefficients(alpha=alpha, beta=beta, gamma=gamma)
    measure = cost_module.multiply_adds if cost == "macs" else cost_module.parameter_count

    def at(phi: float) -> tuple[Variant, float]:
        variant = phi_variant(phi, genotype, alpha, beta, gamma, name=f"{cost}{target:.3g}")
        return variant, float(measure(genotype, variant))

    low, high = PHI_RANGE
    low_variant, low_cost = at(low)
    high_variant, high_cost = at(high)
    if target < low_cost / 2 or target > high_cost * 2:
        raise UserError(f"{cost} target {target:.3g} is out of reach: phi in {low:g}..{high:g} spans "
                        f"{low_cost:.3g}..{high_cost:.3g}")
    for _ in range(40):
        middle = (low + high) / 2
        middle_variant, middle_cost = at(middle)
        if middle_cost < target:
            low, low_variant, low_cost = middle, middle_variant, middle_cost
        else:
            high, high_variant, high_cost = middle, middle_variant, middle_cost
    return low_variant if abs(low_cost - target) <= abs(high_cost - target) else high_variant


_RANGE = re.compile(r"^(b\d)-(b\d)$")
_PHI_RANGE = re.compile(r"^phi=(-?[\d.]+)\.\.(-?[\d.]+)(?::([\d.]+))?((?:,\w+=[\d.e+-]+)*)$")


def resolve_family(spec: "str | list | tuple", genotype: Genotype) -> list[Variant]:
    """A list of variants: ``b0-b7``, ``phi=0..6`` (``:step``, ``,alpha=...``), ``b0,b2,b4``,
    a ``;``-separated list of any variant specs, or a Python list of them.

    >>> from effscale.model.zoo import get_genotype
    >>> [v.name for v in resolve_family("phi=0..2", get_genotype("tiny"))]
    ['phi0', 'phi1', 'phi2']
    """
    if isinstance(spec, (list, tuple)):
        variants = [resolve_variant(item, genotype) for item in spec]
    else:
        text = str(spec).strip().lower().replace(" ", "")
        if (match := _RANGE.match(text)):
            names = list(published_table(genotype))
            first, last = match.groups()
            if first not in names or last not in names or names.index(first) > names.index(last):
                raise UserError(f"family {spec!r}: expected a range of published names such as b0-b7")
            variants = [resolve_variant(n, genotype) for n in names[names.index(first):names.index(last) + 1]]
        elif (match := _PHI_RANGE.match(text)):
            start, stop, step, extra = match.groups()
            try:
                start, stop, step = float(start), float(stop), float(step or 1)
            except ValueError:
                raise UserError(f"family {spec!r}: phi range bounds must be numbers") from None
            if step <= 0 or stop < start or (stop - start) / step > 64:
                raise UserError(f"family {spec!r}: expected phi=START..STOP[:STEP] with START <= STOP, "
                                "a positive step and at most 64 members")
            count = int(math.floor((stop - start) / step + 1e-9)) + 1
            variants = [resolve_variant(f"phi={start + i * step:g}{extra}", genotype) for i in range(count)]
        else:
            separator = ";" if ";" in text else ("," if all(p in PUBLISHED for p in text.split(",")) else None)
            variants = [resolve_variant(p, genotype) for p in (text.split(separator) if separator else [text])]
    if not variants:
        raise UserError(f"family {spec!r} has no members")
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise UserError(f"family {spec!r} names a variant twice: {names}")
    return variants
