"""Compound scaling: width, depth and resolution variants of a genotype.

A :class:`Variant` is a width multiplier, a depth multiplier, an input resolution and a
dropout rate. Four ways to name one (:func:`effscale.model.variants.resolve_variant`, which reads the
cost target with the cost model; :func:`parse_variant` reads the other three):

* the published EfficientNet table: ``b0`` .. ``b8``, ``l2`` (resolutions as published for a
  224 px genotype; for another design resolution, the same ratios to it). For a genotype with
  EfficientNetV2 conventions (``v2``), EfficientNetV2's own table ``b0`` .. ``b3``;
* the paper's formula ``phi=1.5`` (optionally ``,alpha=1.2,beta=1.1,gamma=1.15``):
  depth alpha^phi, width beta^phi, resolution genotype.resolution * gamma^phi;
* a cost target ``macs=2e9`` or ``params=5e6``: the phi whose variant comes closest;
* explicit coefficients ``w=0.25,d=0.34,r=32`` (optionally ``,dropout=0.1``).

>>> round_filters(32, 1.1), round_filters(1280, 2.0), round_repeats(3, 1.4)
(32, 2560, 5)
>>> from effscale.model.zoo import get_genotype
>>> parse_variant("b3", get_genotype("efficientnet-b0"))
Variant(name='b3', width=1.2, depth=1.4, resolution=300, dropout=0.3)
>>> parse_variant("phi=1", get_genotype("efficientnet-b0")).resolution
256
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from effscale.model.conventions import CONVENTIONS
from effscale.common.errors import UserError
from effscale.model.genotype import Genotype

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

    >>> from effscale.model.zoo import get_genotype
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

    @classmethod
    def explicit(cls, width: float, depth: float, resolution: int, dropout: float = 0.2) -> "Variant":
        """The variant of explicit coefficients, named as :func:`parse_variant` names ``w=..,d=..,r=..``.

        >>> from effscale.model.zoo import get_genotype
        >>> Variant.explicit(0.5, 1, 32) == parse_variant("w=0.5,d=1,r=32", get_genotype("tiny"))
        True
        """
        return cls(f"w{_short(width)}-d{_short(depth)}-r{resolution}", float(width), float(depth), resolution,
                   dropout)

    @property
    def spec(self) -> str:
        """The ``w=..,d=..,r=..`` spelling of the coefficients (``,dropout=..`` unless 0.2), the
        text saved files key a variant by; :func:`parse_variant` reads it back.

        >>> Variant.explicit(0.25, 1.0, 16).spec, Variant.explicit(1, 2, 8, dropout=0.1).spec
        ('w=0.25,d=1,r=16', 'w=1,d=2,r=8,dropout=0.1')
        """
        extra = "" if self.dropout == 0.2 else f",dropout={_short(self.dropout)}"
        return f"w={_short(self.width)},d={_short(self.depth)},r={self.resolution}{extra}"


def variant_spec(variant: "str | Variant") -> str:
    """A variant's text key: a spelling as given, a :class:`Variant` as :attr:`Variant.spec`.

    >>> variant_spec("b0"), variant_spec(Variant.explicit(0.5, 0.5, 32))
    ('b0', 'w=0.5,d=0.5,r=32')
    """
    return variant.spec if isinstance(variant, Variant) else str(variant)


def round_resolution(pixels: float, base: int) -> int:
    """Round a scaled resolution to a multiple of 8 (of 4 for bases under 64 px)."""
    multiple = 8 if base >= 64 else 4
    return max(multiple, int(round(pixels / multiple)) * multiple)


def phi_variant(phi: float, genotype: Genotype, alpha: float = DEFAULT_ALPHA, beta: float = DEFAULT_BETA,
                gamma: float = DEFAULT_GAMMA, name: str | None = None) -> Variant:
    """The paper's compound scaling: depth alpha^phi, width beta^phi, resolution gamma^phi.

    >>> from effscale.model.zoo import get_genotype
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


def parse_variant(spec: "str | Variant", genotype: Genotype) -> Variant:
    """A Variant from a published name, ``phi=X`` or ``w=..,d=..,r=..`` (cost targets such as
    ``macs=2e9`` need the cost model: :func:`effscale.model.variants.resolve_variant` reads all four)."""
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
        raise UserError(f"variant {spec!r} is a cost target: resolve it with effscale.resolve_variant")
    if head in ("w", "d", "r", "dropout"):
        values = _parse_assignments(text, {"w": float, "d": float, "r": int, "dropout": float})
        missing = [k for k in ("w", "d", "r") if k not in values]
        if missing:
            raise UserError(f"variant {spec!r}: missing {', '.join(k + '=' for k in missing)}")
        return Variant.explicit(values["w"], values["d"], values["r"], values.get("dropout", 0.2))
    raise UserError(f"unknown variant {spec!r}: expected a published name ({', '.join(PUBLISHED)}), "
                    "phi=X, macs=N, params=N or w=..,d=..,r=..")


def scale_genotype(genotype: Genotype, variant: "Variant | str") -> Genotype:
    """Materialize a variant as a new genotype (filters, repeats and resolution rounded in).

    Useful to shrink a published baseline for small data before deriving a family from it:
    the family's members then scale the shrunken genotype.

    >>> from effscale.model.zoo import get_genotype
    >>> small = scale_genotype(get_genotype("efficientnet-b0"), "w=0.25,d=0.5,r=32")
    >>> small.stem, [s.repeats for s in small.stages], small.resolution
    (8, [1, 1, 1, 2, 2, 2, 1], 32)
    """
    from dataclasses import replace

    variant = parse_variant(variant, genotype)
    guard = CONVENTIONS[genotype.convention].filter_round_up_guard
    return replace(
        genotype,
        stem=round_filters(genotype.stem, variant.width, guard=guard),
        head=round_filters(genotype.head, variant.width, guard=guard),
        resolution=variant.resolution,
        stages=tuple(replace(s, filters=round_filters(s.filters, variant.width, guard=guard),
                             repeats=round_repeats(s.repeats, variant.depth)) for s in genotype.stages),
    )
