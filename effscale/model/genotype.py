"""Genotypes: a whole network written down as plain, frozen values.

A :class:`Genotype` is a stem, a list of :class:`Stage` s (each a block type repeated
``repeats`` times; only the first block of a stage strides) and a head. It has three
equivalent forms:

* the dataclasses themselves,
* a compact string, one ``-``-separated section for the header and for each stage,
  in the spirit of the tensorflow/tpu and timm block strings::

      stem32_head1280_res224_swish-mb_r1_k3_s1_e1_c16_se0.25-mb_r2_k3_s2_e6_c24_se0.25

* a JSON object (:meth:`Genotype.to_dict` / :meth:`Genotype.from_dict`).

Header tokens: ``stem<int>`` stem filters, ``head<int>`` head filters, ``res<int>`` the
resolution the genotype was designed at, the activation name, and two optional tokens:
``v2`` for EfficientNetV2's implementation conventions (Keras 'same' padding, ``dwconv2``
layer names, V2's channel rounding; see :mod:`effscale.model.conventions`) and ``signed`` for
inputs scaled to [-1, 1] instead of ImageNet-normalized (EfficientNetV2-S/M/L). Stage tokens: the
block type first (``mb`` MBConv, ``fmb`` Fused-MBConv, ``ds`` depthwise-separable, or any token
registered in :mod:`effscale.model.block_types`), then
``r`` repeats, ``k`` kernel, ``s`` stride, ``e`` expand ratio, ``c`` output filters,
optional ``se<ratio>`` (of the block's input channels), ``noskip`` to turn off the
identity residual, and an activation name to override the network's for that stage.

Parsing is strict: every unknown, repeated or malformed token raises
:class:`~effscale.common.errors.UserError` (a ``ValueError``) naming the token.

>>> g = Genotype.parse("stem16_head64_res32_relu-mb_r1_k3_s2_e4_c24_se0.25-ds_r2_k5_s1_e1_c32_noskip")
>>> g.stages[1].kernel, g.stages[1].skip
(5, False)
>>> Genotype.parse(g.encode()) == g
True
>>> Genotype.from_dict(g.to_dict()) == g
True
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass

from effscale.model.block_types import BUILT_IN, block_type, from_token
from effscale.model.conventions import CONVENTIONS, INPUTS
from effscale.common.errors import UserError

BLOCK_TYPES = BUILT_IN  # the built-in block types; every registered one: effscale.model.block_types.names()

# token -> keras activation name. Tokens contain no "_" so they fit the string form.
ACTIVATIONS = {
    "relu": "relu",
    "relu6": "relu6",
    "swish": "swish",
    "hswish": "hard_swish",
    "gelu": "gelu",
    "elu": "elu",
}

MAX_KERNEL = 15
MAX_REPEATS = 100   # blocks per stage before depth scaling (EfficientNet-B0's largest is 4)
MAX_STAGES = 64
_NUMBER = re.compile(r"^\d+(\.\d+)?$")
_INTEGER = re.compile(r"^\d+$")


def _fmt(value: float) -> str:
    """Shortest exact text for a number: ints without a decimal point."""
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise UserError(message)


@dataclass(frozen=True)
class Stage:
    """One stage: ``repeats`` blocks of one type; only the first may stride.

    ``se`` is the squeeze-and-excitation ratio relative to the block's *input* channels
    (EfficientNet and MnasNet convention); 0 turns SE off. ``activation`` None inherits the
    network's.

    >>> Stage("mbconv", repeats=2, kernel=3, stride=2, expand=6, filters=24, se=0.25).encode()
    'mb_r2_k3_s2_e6_c24_se0.25'
    """

    block: str
    repeats: int
    kernel: int
    stride: int
    expand: float
    filters: int
    se: float = 0.0
    skip: bool = True
    activation: str | None = None

    def __post_init__(self):
        kind = block_type(self.block)
        for field in ("repeats", "kernel", "stride", "filters"):
            value = getattr(self, field)
            _check(isinstance(value, int) and not isinstance(value, bool), f"{field} must be an integer, got {value!r}")
        _check(1 <= self.repeats <= MAX_REPEATS, f"repeats must be in 1..{MAX_REPEATS}, got {self.repeats}")
        _check(1 <= self.kernel <= MAX_KERNEL and self.kernel % 2 == 1,
               f"kernel must be an odd integer in 1..{MAX_KERNEL}, got {self.kernel}")
        _check(self.stride in (1, 2), f"stride must be 1 or 2, got {self.stride}")
        _check(isinstance(self.expand, (int, float)) and not isinstance(self.expand, bool),
               f"expand ratio must be a number, got {self.expand!r}")
        _check(1 <= self.expand <= 16, f"expand ratio must be in 1..16, got {self.expand}")
        _check(kind.expands or self.expand == 1, f"a {kind.title} stage has expand ratio 1, got {self.expand}")
        _check(1 <= self.filters <= 100_000, f"filters must be in 1..100000, got {self.filters}")
        _check(isinstance(self.se, (int, float)) and not isinstance(self.se, bool) and 0 <= self.se <= 1,
               f"SE ratio must be a number in 0..1, got {self.se!r}")
        _check(isinstance(self.skip, bool), f"skip must be true or false, got {self.skip!r}")
        _check(self.activation is None or self.activation in ACTIVATIONS,
               f"activation {self.activation!r}: expected one of {', '.join(ACTIVATIONS)}")

    def encode(self) -> str:
        tokens = [block_type(self.block).token, f"r{self.repeats}", f"k{self.kernel}", f"s{self.stride}",
                  f"e{_fmt(self.expand)}", f"c{self.filters}"]
        if self.se:
            tokens.append(f"se{_fmt(self.se)}")
        if not self.skip:
            tokens.append("noskip")
        if self.activation:
            tokens.append(self.activation)
        return "_".join(tokens)

    @classmethod
    def parse(cls, text: str) -> "Stage":
        """Parse one stage section such as ``mb_r2_k3_s2_e6_c24_se0.25``."""
        tokens = text.split("_")
        block = from_token(tokens[0]).name
        fields: dict[str, object] = {}
        for token in tokens[1:]:
            key, value = _parse_stage_token(token)
            _check(key not in fields, f"token {token!r}: {_STAGE_FIELD_NAMES[key]} given twice")
            fields[key] = value
        missing = [f"{p} ({_STAGE_FIELD_NAMES[k]})" for p, k in _REQUIRED_STAGE_TOKENS if k not in fields]
        _check(not missing, f"stage {text!r}: missing {', '.join(missing)}")
        return cls(block=block, **fields)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_STAGE_FIELD_NAMES = {"repeats": "repeats", "kernel": "kernel", "stride": "stride", "expand": "expand ratio",
                      "filters": "output filters", "se": "SE ratio", "skip": "skip", "activation": "activation"}
_REQUIRED_STAGE_TOKENS = (("r", "repeats"), ("k", "kernel"), ("s", "stride"), ("e", "expand"), ("c", "filters"))
# Longest prefix first so "se0.25" is not read as "s" + "e0.25".
_STAGE_NUMBER_TOKENS = (("se", "se", float), ("r", "repeats", int), ("k", "kernel", int),
                        ("s", "stride", int), ("e", "expand", float), ("c", "filters", int))


def _parse_number(token: str, text: str, kind) -> float | int:
    pattern = _INTEGER if kind is int else _NUMBER
    _check(bool(pattern.match(text)),
           f"token {token!r}: expected {'an integer' if kind is int else 'a number'} after the prefix, got {text!r}")
    value = kind(text)
    return int(value) if kind is float and float(value).is_integer() else value


def _parse_stage_token(token: str) -> tuple[str, object]:
    if token == "noskip":
        return "skip", False
    if token in ACTIVATIONS:
        return "activation", token
    for prefix, field, kind in _STAGE_NUMBER_TOKENS:
        if token.startswith(prefix) and token[len(prefix):len(prefix) + 1].isdigit():
            return field, _parse_number(token, token[len(prefix):], kind)
    raise UserError(
        f"token {token!r}: expected r<repeats>, k<kernel>, s<stride>, e<expand>, c<filters>, se<ratio>, "
        f"noskip or an activation ({', '.join(ACTIVATIONS)})")


@dataclass(frozen=True)
class Genotype:
    """A whole network: stem, stages, head, activation and design resolution.

    >>> from effscale.model.zoo import get_genotype
    >>> b0 = get_genotype("efficientnet-b0")
    >>> len(b0.stages), b0.stem, b0.head, b0.resolution
    (7, 32, 1280, 224)
    >>> len(b0.key)
    16
    """

    stages: tuple[Stage, ...]
    stem: int = 32
    head: int = 1280
    resolution: int = 224
    activation: str = "swish"
    convention: str = "v1"          # see effscale.model.conventions
    inputs: str = "imagenet"        # imagenet | signed

    def __post_init__(self):
        _check(isinstance(self.stages, tuple) and len(self.stages) >= 1,
               "a genotype needs a non-empty tuple of stages")
        _check(all(isinstance(s, Stage) for s in self.stages), "every stage must be a Stage")
        _check(len(self.stages) <= MAX_STAGES, f"a genotype has at most {MAX_STAGES} stages, got {len(self.stages)}")
        for field in ("stem", "head", "resolution"):
            value = getattr(self, field)
            _check(isinstance(value, int) and not isinstance(value, bool) and value >= 1,
                   f"{field} must be a positive integer, got {value!r}")
        _check(self.stem <= 100_000 and self.head <= 100_000, "stem and head filters must be at most 100000")
        _check(8 <= self.resolution <= 4096, f"resolution must be in 8..4096, got {self.resolution}")
        _check(self.activation in ACTIVATIONS,
               f"activation {self.activation!r}: expected one of {', '.join(ACTIVATIONS)}")
        _check(self.convention in CONVENTIONS,
               f"convention {self.convention!r}: expected one of {', '.join(CONVENTIONS)}")
        _check(self.inputs in INPUTS, f"inputs {self.inputs!r}: expected one of {', '.join(INPUTS)}")

    # -- string form ---------------------------------------------------------------------
    def encode(self) -> str:
        """The canonical string form; ``Genotype.parse(g.encode()) == g``."""
        header = f"stem{self.stem}_head{self.head}_res{self.resolution}_{self.activation}"
        header += "".join(f"_{token}" for token in (self.convention, self.inputs) if token not in _HEADER_DEFAULTS)
        return "-".join([header] + [s.encode() for s in self.stages])

    def __str__(self) -> str:
        return self.encode()

    @classmethod
    def parse(cls, text: str) -> "Genotype":
        """Parse the string form; raises UserError naming the first bad token."""
        _check(isinstance(text, str) and text.strip() != "", "empty genotype string")
        sections = text.strip().split("-")
        _check(len(sections) >= 2, f"genotype {text!r}: expected a header and at least one stage separated by '-'")
        header = _parse_header(sections[0])
        stages = []
        for index, section in enumerate(sections[1:], start=1):
            _check(section != "", f"stage {index} is empty (two '-' in a row?)")
            try:
                stages.append(Stage.parse(section))
            except UserError as error:
                raise UserError(f"stage {index} {section!r}: {error}") from None
        return cls(stages=tuple(stages), **header)

    # -- JSON form -----------------------------------------------------------------------
    def to_dict(self) -> dict:
        data = {"stem": self.stem, "head": self.head, "resolution": self.resolution,
                "activation": self.activation, "stages": [s.to_dict() for s in self.stages]}
        for field in ("convention", "inputs"):  # written only when not the default, so V1 JSON is unchanged
            if getattr(self, field) not in _HEADER_DEFAULTS:
                data[field] = getattr(self, field)
        return data

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: dict) -> "Genotype":
        _check(isinstance(data, dict), f"a genotype JSON must be an object, got {type(data).__name__}")
        known = {"stem", "head", "resolution", "activation", "stages", "convention", "inputs"}
        unknown = sorted(set(data) - known)
        _check(not unknown, f"unknown genotype key(s) {unknown}: expected {sorted(known)}")
        _check("stages" in data and isinstance(data["stages"], list), "genotype key 'stages' must be a list")
        stage_keys = {f.name for f in dataclasses.fields(Stage)}
        stages = []
        for index, item in enumerate(data["stages"], start=1):
            _check(isinstance(item, dict), f"stage {index} must be an object")
            bad = sorted(set(item) - stage_keys)
            _check(not bad, f"stage {index}: unknown key(s) {bad}: expected {sorted(stage_keys)}")
            try:
                stages.append(Stage(**item))
            except TypeError as error:  # a required field is missing
                raise UserError(f"stage {index}: {error}") from None
            except UserError as error:
                raise UserError(f"stage {index}: {error}") from None
        header = {k: v for k, v in data.items() if k != "stages"}
        return cls(stages=tuple(stages), **header)

    @classmethod
    def from_json(cls, text: str) -> "Genotype":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise UserError(f"genotype JSON does not parse: {error}") from None
        return cls.from_dict(data)

    # -- identity --------------------------------------------------------------------------
    @property
    def key(self) -> str:
        """A short canonical key: equal genotypes, equal keys (for caches and dedup)."""
        return hashlib.sha1(self.encode().encode()).hexdigest()[:16]

    def replace(self, **changes) -> "Genotype":
        return dataclasses.replace(self, **changes)


_HEADER_DEFAULTS = ("v1", "imagenet")


def _parse_header(section: str) -> dict:
    fields: dict[str, object] = {}
    for token in section.split("_"):
        for prefix, field in (("stem", "stem"), ("head", "head"), ("res", "resolution")):
            if token.startswith(prefix) and token[len(prefix):len(prefix) + 1].isdigit():
                value = _parse_number(token, token[len(prefix):], int)
                break
        else:
            if token in ACTIVATIONS:
                field, value = "activation", token
            elif token in CONVENTIONS:
                field, value = "convention", token
            elif token in INPUTS:
                field, value = "inputs", token
            else:
                raise UserError(
                    f"header token {token!r}: expected stem<filters>, head<filters>, res<pixels>, an "
                    f"activation ({', '.join(ACTIVATIONS)}), a convention ({', '.join(CONVENTIONS)}) "
                    f"or inputs ({', '.join(INPUTS)})")
        _check(field not in fields, f"header token {token!r}: {field} given twice")
        fields[field] = value
    missing = [name for name in ("stem", "head", "resolution", "activation") if name not in fields]
    _check(not missing, f"genotype header {section!r}: missing {', '.join(missing)}")
    return fields
