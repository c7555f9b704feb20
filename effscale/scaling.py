"""Compound scaling: width, depth and resolution variants of a genotype.

A :class:`Variant` is a width multiplier, a depth multiplier, an input resolution and a
dropout rate. Four ways to name one (:func:`resolve_variant`):

* the published EfficientNet table: ``b0`` .. ``b8``, ``l2`` (resolutions as published for a
  224 px genotype; for another design resolution, the same ratios to it). For a genotype with
  EfficientNetV2 conventions (``v2``), EfficientNetV2's own table ``b0`` .. ``b3``;
* the paper's formula ``phi=1.5`` (optionally ``,alpha=1.2,beta=1.1,gamma=1.15``):
  depth alpha^phi, width beta^phi, resolution genotype.resolution * gamma^phi;
* a cost target ``macs=2e9`` or ``params=5e6``: the phi whose variant comes closest;
* explicit coefficients ``w=0.25,d=0.34,r=32`` (optionally ``,dropout=0.1``).

>>> round_filters(32, 1.1), round_filters(1280, 2.0), round_repeats(3, 1.4)
(32, 2560, 5)
>>> from effscale.zoo import get_genotype
>>> resolve_variant("b3", get_genotype("efficientnet-b0"))
Variant(name='b3', width=1.2, depth=1.4, resolution=300, dropout=0.3)
>>> resolve_variant("phi=1", get_genotype("efficientnet-b0")).resolution
256
>>> [v.name for v in resolve_family("b0-b2", get_genotype("efficientnet-b0"))]
['b0', 'b1', 'b2']
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from effscale.conventions import CONVENTIONS
from effscale.errors import UserError
from effscale.genotype import Genotype

DIVISOR = 8
DEFAULT_ALPHA, DEFAULT_BETA, DEFAULT_GAMMA = 1.2, 1.1, 1.15
PHI_RANGE = (-4.0, 12.0)

# name: (width, depth, resolution, dropout). keras.applications / tensorflow/tpu
# efficientnet_params; b8 and l2 from google automl / timm.
PUBLISHED: dict[str, tuple[float, float, int, float]] = {
    "b0": (1.0, 1.0, 224, 0.2),
    "b1": (1.0, 1.1, 240, 0.2),
    "b2": (1.1, 1.2, 260, 0.3),
    "b3": (1.2, 1.4, 300, 0.3),
    "b4": (1.4, 1.8, 380, 0.4),
    "b5": (1.6, 2.2, 456, 0.4),
    "b6": (1.8, 2.6, 528, 0.5),
    "b7": (2.0, 3.1, 600, 0.5),
    "b8": (2.2, 3.6, 672, 0.5),
    "l2": (4.3, 5.3, 800, 0.5),
}

# EfficientNetV2-B0..B3 (Tan & Le 2021, arXiv 2104.00298; keras.applications efficientnet_v2.py,
# which keeps the classifier dropout at 0.2 for all of them). S, M and L are separate genotypes.
PUBLISHED_V2: dict[str, tuple[float, float, int, float]] = {
    "b0": (1.0, 1.0, 224, 0.2),
    "b1": (1.0, 1.1, 240, 0.2),
    "b2": (1.1, 1.2, 260, 0.2),
    "b3": (1.2, 1.4, 300, 0.2),
}


def published_table(genotype: Genotype) -> dict[str, tuple[float, float, int, float]]:
    """The published variant table that applies to ``genotype``: V1's or V2's.

    >>> from effscale.zoo import get_genotype
    >>> list(published_table(get_genotype("efficientnetv2-s")))
    ['b0', 'b1', 'b2', 'b3']
    """
    return PUBLISHED_V2 if genotype.convention == "v2" else PUBLISHED


def round_filters(filters: int, width: float, divisor: int = DIVISOR, guard: bool = True) -> int:
    """Scale a channel count by ``width``, rounding to the nearest multiple of ``divisor``
    but, with ``guard`` (EfficientNet V1's rule), never more than 10% down.
    EfficientNetV2 rounds without the guard.

    >>> round_filters(40, 1.1), round_filters(16, 0.25), round_filters(112, 1.4)
    (48, 8, 160)
    >>> round_filters(112, 0.32), round_filters(112, 0.32, guard=False)
    (40, 32)
    """
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if guard and rounded < 0.9 * scaled:
        rounded += divisor
    return int(rounded)


def round_repeats(repeats: int, depth: float) -> int:
    """Scale a stage's block count by ``depth``, rounding up.

    >>> round_repeats(1, 1.1), round_repeats(4, 3.1)
    (2, 13)
    """
    return int(math.ceil(depth * repeats))


@dataclass(frozen=True)
class Variant:
    """One member of a family: multipliers applied to a genotype."""

    name: str
    width: float
    depth: float
    resolution: int
    dropout: float = 0.2

    def __post_init__(self):
        for field in ("width", "depth"):
            value = getattr(self, field)
            if not (isinstance(value, (int, float)) and 0.01 <= value <= 16):
                raise UserError(f"variant {self.name!r}: {field} must be in 0.01..16, got {value!r}")
        if not (isinstance(self.resolution, int) and 8 <= self.resolution <= 4096):
            raise UserError(f"variant {self.name!r}: resolution must be an integer in 8..4096, got {self.resolution!r}")
        if not (isinstance(self.dropout, (int, float)) and 0 <= self.dropout < 1):
            raise UserError(f"variant {self.name!r}: dropout must be in [0, 1), got {self.dropout!r}")

    def to_dict(self) -> dict:
        return {"name": self.name, "width": self.width, "depth": self.depth,
                "resolution": self.resolution, "dropout": self.dropout}

    @classmethod
    def from_dict(cls, data: dict) -> "Variant":
        return cls(**data)


def round_resolution(pixels: float, base: int) -> int:
    """Round a scaled resolution to a multiple of 8 (of 4 for bases under 64 px)."""
    multiple = 8 if base >= 64 else 4
    return max(multiple, int(round(pixels / multiple)) * multiple)


def phi_variant(phi: float, genotype: Genotype, alpha: float = DEFAULT_ALPHA, beta: float = DEFAULT_BETA,
                gamma: float = DEFAULT_GAMMA, name: str | None = None) -> Variant:
    """The paper's compound scaling: depth alpha^phi, width beta^phi, resolution gamma^phi.

    >>> from effscale.zoo import get_genotype
    >>> v = phi_variant(1, get_genotype("efficientnet-b0"))
    >>> (v.depth, v.width, v.resolution)
    (1.2, 1.1, 256)
    """
    _check_coefficients(phi=phi, alpha=alpha, beta=beta, gamma=gamma)
    return Variant(
        name=name or f"phi{_short(phi)}",
        width=round(beta ** phi, 6),
        depth=round(alpha ** phi, 6),
        resolution=round_resolution(genotype.resolution * gamma ** phi, genotype.resolution),
        dropout=round(min(0.5, max(0.0, 0.2 + 0.05 * phi)), 4),
    )


def _short(value: float) -> str:
    return f"{value:g}"


def _check_coefficients(**values: float) -> None:
    for key, value in values.items():
        if not isinstance(value, (int, float)) or math.isnan(value):
            raise UserError(f"{key} must be a number, got {value!r}")
        if key == "phi":
            if not PHI_RANGE[0] <= value <= PHI_RANGE[1]:
                raise UserError(f"phi must be in {PHI_RANGE[0]:g}..{PHI_RANGE[1]:g}, got {value:g}")
        elif not 1.0 <= value <= 4.0:
            raise UserError(f"{key} must be in 1..4 (a growth factor per unit of phi), got {value:g}")


def _parse_assignments(spec: str, allowed: dict[str, type]) -> dict[str, float]:
    values: dict[str, float] = {}
    for part in spec.split(","):
        key, sep, text = part.partition("=")
        key = key.strip()
        if not sep or key not in allowed:
            raise UserError(f"variant {spec!r}: token {part!r}: expected one of "
                            f"{', '.join(k + '=' for k in allowed)}")
        if key in values:
            raise UserError(f"variant {spec!r}: {key} given twice")
        try:
            value = allowed[key](text.strip())
        except ValueError:
            raise UserError(f"variant {spec!r}: {key}={text!r} is not a valid "
                            f"{'integer' if allowed[key] is int else 'number'}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise UserError(f"variant {spec!r}: {key} must be finite")
        values[key] = value
    return values


def resolve_variant(spec: "str | Variant", genotype: Genotype) -> Variant:
    """A Variant from any of the four spellings (see the module docstring)."""
    if isinstance(spec, Variant):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise UserError(f"empty or non-text variant {spec!r}")
    text = spec.strip().lower().replace(" ", "")
    table = published_table(genotype)
    if text in table:
        width, depth, resolution, dropout = table[text]
        if genotype.resolution != table["b0"][2]:
            # The table's resolutions are for a 224 px baseline; keep their ratios elsewhere.
            resolution = round_resolution(genotype.resolution * resolution / table["b0"][2], genotype.resolution)
        return Variant(text, width, depth, resolution, dropout)
    if text in PUBLISHED:
        raise UserError(f"variant {spec!r}: EfficientNetV2 publishes {', '.join(table)} only; "
                        "use phi=X, macs=N, params=N or w=..,d=..,r=.. for larger members")
    head = text.split("=", 1)[0]
    if head == "phi":
        values = _parse_assignments(text, {"phi": float, "alpha": float, "beta": float, "gamma": float})
        phi = values.pop("phi")
        return phi_variant(phi, genotype, **values)
    if head in ("macs", "params"):
        values = _parse_assignments(text, {head: float, "alpha": float, "beta": float, "gamma": float})
        return cost_target_variant(genotype, head, values.pop(head), **values)
    if head in ("w", "d", "r", "dropout"):
        values = _parse_assignments(text, {"w": float, "d": float, "r": int, "dropout": float})
        missing = [k for k in ("w", "d", "r") if k not in values]
        if missing:
            raise UserError(f"variant {spec!r}: missing {', '.join(k + '=' for k in missing)}")
        name = f"w{_short(values['w'])}-d{_short(values['d'])}-r{values['r']}"
        return Variant(name, values["w"], values["d"], values["r"], values.get("dropout", 0.2))
    raise UserError(f"unknown variant {spec!r}: expected a published name ({', '.join(PUBLISHED)}), "
                    "phi=X, macs=N, params=N or w=..,d=..,r=..")


def cost_target_variant(genotype: Genotype, cost: str, target: float, alpha: float = DEFAULT_ALPHA,
                        beta: float = DEFAULT_BETA, gamma: float = DEFAULT_GAMMA) -> Variant:
    """The phi-variant whose multiply-adds (or parameters) come closest to ``target``.

    Cost grows monotonically with phi up to rounding steps, so a bisection brackets the
    target and the closer of the two bracketing variants wins.

    >>> from effscale.zoo import get_genotype
    >>> v = cost_target_variant(get_genotype("efficientnet-b0"), "macs", 1.0e9)
    >>> v.name, 0.9e9 < __import__("effscale").cost.multiply_adds(get_genotype("efficientnet-b0"), v) < 1.1e9
    ('macs1e+09', True)
    """
    from effscale import cost as cost_module

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

    >>> from effscale.zoo import get_genotype
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


def scale_genotype(genotype: Genotype, variant: "Variant | str") -> Genotype:
    """Materialize a variant as a new genotype (filters, repeats and resolution rounded in).

    Useful to shrink a published baseline for small data before deriving a family from it:
    the family's members then scale the shrunken genotype.

    >>> from effscale.zoo import get_genotype
    >>> small = scale_genotype(get_genotype("efficientnet-b0"), "w=0.25,d=0.5,r=32")
    >>> small.stem, [s.repeats for s in small.stages], small.resolution
    (8, [1, 1, 1, 2, 2, 2, 1], 32)
    """
    from dataclasses import replace

    variant = resolve_variant(variant, genotype)
    guard = CONVENTIONS[genotype.convention].filter_round_up_guard
    return replace(
        genotype,
        stem=round_filters(genotype.stem, variant.width, guard=guard),
        head=round_filters(genotype.head, variant.width, guard=guard),
        resolution=variant.resolution,
        stages=tuple(replace(s, filters=round_filters(s.filters, variant.width, guard=guard),
                             repeats=round_repeats(s.repeats, variant.depth)) for s in genotype.stages),
    )
