"""The MnasNet factorized hierarchical search space around a reference genotype.

Each stage of the reference is searched on its own (MnasNet, arXiv 1807.11626): all blocks of a
stage share one block type (MBConv / Fused-MBConv / depthwise-separable / any registered in
:mod:`effscale.model.block_types`), kernel, expand ratio, SE ratio and skip op, and the stage may have one block less or more than the reference and
0.75x / 1x / 1.25x its output filters (rounded to 8). Strides stay the reference's. Three more
choices are closed by default: a stage's ``activation``, and the network's ``stem`` and ``head``
widths (multipliers of the reference's, rounded to 8). Which choices are open, and their values,
are configurable; :data:`WIDE` is the wide space for small images (every choice open, broad ranges).

The space is expressed as Keras Tuner ``HyperParameters`` named ``stage{i}/{choice}``; the expand
ratio is a conditional hyperparameter, active only when the block type has an expansion (a
depthwise-separable block has none). Values map to a :class:`~effscale.model.genotype.Genotype` and
back, and :attr:`SearchSpace.size` counts the distinct genotypes.

>>> space = SearchSpace("tiny")
>>> space.size
23219011584
>>> values = space.default_values()
>>> space.to_genotype(values) == space.reference
True
>>> space.to_values(space.reference) == values
True
>>> small = SearchSpace("tiny", open=("kernel", "se"), stages=(2, 3))
>>> small.size, sorted(small.default_values())
(16, ['stage2/kernel', 'stage2/se', 'stage3/kernel', 'stage3/se'])
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from effscale.model.block_types import block_type, names as block_names
# The generic helpers over Keras Tuner HyperParameters, importable from here as before.
from effscale.search.hp_values import discrete_values, mutate_values, neighbours, sample_values, space_size  # noqa: F401
from effscale.common.errors import UserError
from effscale.model.conventions import CONVENTIONS
from effscale.model.genotype import Genotype, Stage
from effscale.model.zoo import load_genotype
from effscale.model.scaling import round_filters

CHOICES = ("block", "kernel", "expand", "se", "skip", "repeats", "filters", "activation")  # per stage
NETWORK_CHOICES = ("stem", "head")  # once per network: multipliers of the reference's widths
DEFAULT_OPEN = ("block", "kernel", "expand", "se", "skip", "repeats", "filters")

# Default values of each choice. "repeats" are offsets from the reference's repeats and
# "filters" multipliers of the reference's output filters; the rest are literal values. The
# block choices default to every registered block type (effscale.model.block_types.names()).
DEFAULT_OPTIONS: dict[str, tuple] = {
    "kernel": (3, 5),
    "expand": (1, 3, 4, 6),
    "se": (0.0, 0.25),
    "skip": (True, False),
    "repeats": (-1, 0, 1),
    "filters": (0.75, 1.0, 1.25),
}
# The choices closed by default; their options are saved with a space only when set or open.
EXTRA_OPTIONS: dict[str, tuple] = {
    "activation": ("swish", "relu", "hswish"),
    "stem": (0.5, 1.0, 2.0),
    "head": (0.5, 1.0, 2.0),
}

# The wide space for small images (issue: "search that beats its own starting point"): every
# choice open, kernels up to 7, expand ratios 1-6, filters from half to twice the reference's,
# one block fewer to two more per stage, three activations, the stem and head from half to twice.
# A search keeps its candidates in budget with the reward's cost target and the hard limits.
WIDE: dict = {
    "open": CHOICES + NETWORK_CHOICES,
    "options": {"kernel": (3, 5, 7), "expand": (1, 2, 3, 4, 6), "se": (0.0, 0.25), "repeats": (-1, 0, 1, 2),
                "filters": (0.5, 0.75, 1.0, 1.5, 2.0), "activation": ("swish", "relu", "hswish"),
                "stem": (0.5, 1.0, 2.0), "head": (0.5, 1.0, 2.0)},
}


def _as_tuple(name: str, values) -> tuple:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) == 0:
        raise UserError(f"choice {name!r}: expected a non-empty list of values, got {values!r}")
    return tuple(values)


def _check_options(options: Mapping) -> dict[str, tuple]:
    from effscale.model.genotype import ACTIVATIONS

    merged = dict(DEFAULT_OPTIONS, block=block_names(), **EXTRA_OPTIONS)
    for name, values in (options or {}).items():
        if name not in CHOICES + NETWORK_CHOICES:
            raise UserError(f"unknown choice {name!r}: expected one of {', '.join(CHOICES + NETWORK_CHOICES)}")
        values = _as_tuple(name, values)
        if name == "block":
            bad = [v for v in values if v not in block_names()]
            if bad:
                raise UserError(f"block choice {bad[0]!r}: expected one of {', '.join(block_names())}")
        elif name == "kernel":
            if not all(isinstance(v, int) and v >= 1 and v % 2 == 1 for v in values):
                raise UserError(f"kernel choices must be odd positive integers, got {values}")
        elif name == "expand":
            if not all(isinstance(v, (int, float)) and 1 <= v <= 16 for v in values):
                raise UserError(f"expand choices must be numbers in 1..16, got {values}")
        elif name == "se":
            if not all(isinstance(v, (int, float)) and 0 <= v <= 1 for v in values):
                raise UserError(f"se choices must be numbers in 0..1, got {values}")
        elif name == "skip":
            if not all(isinstance(v, bool) for v in values):
                raise UserError(f"skip choices must be true/false, got {values}")
        elif name == "repeats":
            if not all(isinstance(v, int) and -8 <= v <= 8 for v in values):
                raise UserError(f"repeats choices are offsets in -8..8, got {values}")
        elif name in ("filters", "stem", "head"):
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0.1 <= v <= 8 for v in values):
                raise UserError(f"{name} choices are multipliers in 0.1..8, got {values}")
        elif name == "activation":
            if not all(v in ACTIVATIONS for v in values):
                raise UserError(f"activation choices must be among {', '.join(ACTIVATIONS)}, got {values}")
        merged[name] = values
    return merged


def _unique(values) -> tuple:
    seen = []
    for value in values:
        if value not in seen:
            seen.append(value)
    return tuple(seen)


def _numbers(values) -> tuple:
    """All ints when every value is integral, else all floats (Keras Tuner wants one type)."""
    if all(float(v).is_integer() for v in values):
        return tuple(int(v) for v in values)
    return tuple(float(v) for v in values)


class SearchSpace:
    """A MnasNet-style space around ``reference`` (a Genotype, registered name, string or file).

    ``open``: the choices searched (default: :data:`DEFAULT_OPEN`; also ``activation`` per stage
    and the network's ``stem`` / ``head``, :data:`NETWORK_CHOICES`); closed choices keep the
    reference's value. ``options``: overrides of :data:`DEFAULT_OPTIONS`, e.g.
    ``{"kernel": (3, 5, 7)}``. ``stages``: 1-based stage numbers to search (default all); the
    others stay exactly the reference's. The reference's own values are always in the space.

    >>> space = SearchSpace("tiny", open=("kernel",), options={"kernel": (3, 5, 7)})
    >>> space.size
    81
    >>> g = space.to_genotype({"stage1/kernel": 7, "stage2/kernel": 3, "stage3/kernel": 5, "stage4/kernel": 3})
    >>> [s.kernel for s in g.stages]
    [7, 3, 5, 3]
    """

    def __init__(self, reference: "Genotype | str" = "tiny", open: Sequence[str] | None = None,
                 options: Mapping | None = None, stages: Sequence[int] | None = None):
        self.reference = load_genotype(reference)
        opened = DEFAULT_OPEN if open is None else tuple(open)
        for name in opened:
            if name not in CHOICES + NETWORK_CHOICES:
                raise UserError(f"unknown choice {name!r}: expected one of {', '.join(CHOICES + NETWORK_CHOICES)}")
        self.open = tuple(name for name in CHOICES + NETWORK_CHOICES if name in opened)
        self._set_options = dict(options or {})
        self.options = _check_options(options or {})
        count = len(self.reference.stages)
        chosen = tuple(range(1, count + 1)) if stages is None else tuple(sorted(set(stages)))
        for number in chosen:
            if not (isinstance(number, int) and 1 <= number <= count):
                raise UserError(f"stage {number!r}: the reference has stages 1..{count}")
        if not chosen:
            raise UserError("no stages to search")
        self.stages = chosen
        # name -> (values, default, condition) where condition is None or (parent, allowed values)
        self._decisions: dict[str, tuple[tuple, object, tuple | None]] = {}
        guard = CONVENTIONS[self.reference.convention].filter_round_up_guard
        for choice in NETWORK_CHOICES:
            if choice in self.open:
                width = getattr(self.reference, choice)
                values = {width} | {round_filters(width, m, guard=guard) for m in self.options[choice]}
                self._decisions[f"network/{choice}"] = (tuple(sorted(values)), width, None)
        for number in self.stages:
            for name, entry in self._stage_decisions(number, self.reference.stages[number - 1]).items():
                self._decisions[name] = entry

    # -- construction ------------------------------------------------------------------------
    def _stage_decisions(self, number: int, ref: Stage) -> dict:
        prefix = f"stage{number}/"
        out: dict[str, tuple] = {}
        blocks = (ref.block,)
        if "block" in self.open:
            blocks = _unique((ref.block,) + self.options["block"])
            blocks = tuple(b for b in block_names() if b in blocks)
            out[prefix + "block"] = (blocks, ref.block, None)
        if "kernel" in self.open:
            out[prefix + "kernel"] = (tuple(sorted(_unique(self.options["kernel"] + (ref.kernel,)))), ref.kernel, None)
        expanding = tuple(b for b in blocks if block_type(b).expands)
        if "expand" in self.open and expanding:
            ref_expands = block_type(ref.block).expands
            values = _numbers(sorted(_unique(self.options["expand"] + ((ref.expand,) if ref_expands else ()))))
            default = ref.expand if ref_expands else (1 if 1 in values else values[0])
            default = _numbers((default,))[0] if isinstance(values[0], int) else float(default)
            condition = (prefix + "block", expanding) if len(expanding) < len(blocks) else None
            out[prefix + "expand"] = (values, default, condition)
        if "se" in self.open:
            out[prefix + "se"] = (tuple(sorted(_unique(tuple(float(v) for v in self.options["se"]) + (float(ref.se),)))),
                                  float(ref.se), None)
        if "skip" in self.open:
            out[prefix + "skip"] = ((True, False), ref.skip, None)
        if "repeats" in self.open:
            values = sorted(_unique(max(1, ref.repeats + d) for d in self.options["repeats"] + (0,)))
            out[prefix + "repeats"] = (tuple(values), ref.repeats, None)
        if "filters" in self.open:
            values = {ref.filters}
            for multiplier in self.options["filters"]:
                values.add(ref.filters if multiplier == 1 else round_filters(
                    ref.filters, multiplier, guard=CONVENTIONS[self.reference.convention].filter_round_up_guard))
            out[prefix + "filters"] = (tuple(sorted(values)), ref.filters, None)
        if "activation" in self.open:
            own = ref.activation or self.reference.activation
            values = _unique((own,) + tuple(self.options["activation"]))
            out[prefix + "activation"] = (values, own, None)
        return out

    # -- the space as data -------------------------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        """Hyperparameter names, parents before the choices that depend on them."""
        return tuple(self._decisions)

    def choices(self, name: str) -> tuple:
        return self._decisions[name][0]

    def condition(self, name: str) -> tuple | None:
        """``(parent name, parent values)`` under which ``name`` is active, or None."""
        return self._decisions[name][2]

    def is_active(self, name: str, values: Mapping) -> bool:
        condition = self._decisions[name][2]
        return condition is None or values.get(condition[0]) in condition[1]

    @property
    def size(self) -> int:
        """The number of distinct genotypes in the space (exact)."""
        total = 1
        for choice in NETWORK_CHOICES:
            if f"network/{choice}" in self._decisions:
                total *= len(self.choices(f"network/{choice}"))
        for number in self.stages:
            prefix = f"stage{number}/"
            per_block = 1
            for choice in ("kernel", "se", "skip", "repeats", "filters", "activation"):
                if prefix + choice in self._decisions:
                    per_block *= len(self.choices(prefix + choice))
            ref = self.reference.stages[number - 1]
            blocks = self.choices(prefix + "block") if prefix + "block" in self._decisions else (ref.block,)
            expand = len(self.choices(prefix + "expand")) if prefix + "expand" in self._decisions else 1
            total *= per_block * sum(expand if block_type(b).expands else 1 for b in blocks)
        return total

    def default_values(self) -> dict:
        """The values of the reference genotype."""
        return self.to_values(self.reference)

    def to_dict(self) -> dict:
        """A JSON-able description (config, not state) that :meth:`from_dict` rebuilds.

        >>> SearchSpace.from_dict(SearchSpace("tiny", open=("se",)).to_dict()).size
        16
        """
        options = {k: list(v) for k, v in self.options.items()
                   if k not in EXTRA_OPTIONS or k in self.open or k in self._set_options}
        return {"reference": self.reference.encode(), "open": list(self.open), "options": options,
                "stages": list(self.stages)}

    @classmethod
    def from_dict(cls, data: Mapping) -> "SearchSpace":
        options = {k: tuple(v) for k, v in data.get("options", {}).items()}
        return cls(data["reference"], open=data.get("open"), options=options, stages=data.get("stages"))

    # -- Keras Tuner form ----------------------------------------------------------------------
    def declare(self, hp) -> Genotype:
        """Register the space's hyperparameters on a ``keras_tuner.HyperParameters`` and return
        the genotype of its current values (what ``HyperModel.build`` calls)."""
        values = {}
        for name, (choices, default, condition) in self._decisions.items():
            if condition is None:
                value = self._register(hp, name, choices, default)
            else:
                with hp.conditional_scope(condition[0], list(condition[1])):
                    value = self._register(hp, name, choices, default)
            if value is not None:
                values[name] = value
        return self.to_genotype(values)

    @staticmethod
    def _register(hp, name, choices, default):
        if isinstance(choices[0], bool):
            return hp.Boolean(name, default=default)
        return hp.Choice(name, list(choices), default=default)

    def hyperparameters(self):
        """A fresh ``keras_tuner.HyperParameters`` holding the space, at the reference's values.

        >>> hp = SearchSpace("tiny", open=("kernel", "skip")).hyperparameters()
        >>> len(hp.space), hp.values["stage1/kernel"]
        (8, 3)
        """
        import keras_tuner

        hp = keras_tuner.HyperParameters()
        self.declare(hp)
        return hp

    # -- values <-> genotype ---------------------------------------------------------------------
    def to_genotype(self, values: Mapping) -> Genotype:
        """The genotype of ``values`` (keys outside the space, e.g. ``tuner/epochs``, are ignored).

        Raises UserError naming the first missing or out-of-space value.
        """
        stages = list(self.reference.stages)
        network = {}
        for choice in NETWORK_CHOICES:
            name = f"network/{choice}"
            if name in self._decisions:
                if name not in values:
                    raise UserError(f"missing value for {name!r}")
                if values[name] not in self.choices(name):
                    raise UserError(f"{name} = {values[name]!r} is not in the space: expected one of "
                                    f"{list(self.choices(name))}")
                network[choice] = int(values[name])
        for number in self.stages:
            prefix = f"stage{number}/"
            ref = stages[number - 1]
            fields = {}
            for choice in CHOICES:
                name = prefix + choice
                if name not in self._decisions:
                    continue
                if not self.is_active(name, values):
                    continue
                if name not in values:
                    raise UserError(f"missing value for {name!r}")
                value = values[name]
                allowed = self.choices(name)
                if not any(value == a and isinstance(value, bool) == isinstance(a, bool) for a in allowed):
                    raise UserError(f"{name} = {value!r} is not in the space: expected one of {list(allowed)}")
                fields[choice] = value
            block = fields.get("block", ref.block)
            if not block_type(block).expands:
                expand = 1
            elif "expand" in fields:
                expand = fields["expand"]
            elif not block_type(ref.block).expands:  # block opened away from e.g. dsconv, expand closed
                expand = 1
            else:
                expand = ref.expand
            stages[number - 1] = Stage(
                block=block, repeats=int(fields.get("repeats", ref.repeats)),
                kernel=int(fields.get("kernel", ref.kernel)), stride=ref.stride, expand=expand,
                filters=int(fields.get("filters", ref.filters)), se=fields.get("se", ref.se),
                skip=bool(fields.get("skip", ref.skip)), activation=self._stage_activation(ref, fields))
        return self.reference.replace(stages=tuple(stages), **network)

    def _stage_activation(self, ref: Stage, fields: dict) -> str | None:
        """The stage's activation override: None when it is the network's."""
        if "activation" not in fields:
            return ref.activation
        return None if fields["activation"] == self.reference.activation else fields["activation"]

    def to_values(self, genotype: "Genotype | str") -> dict:
        """The hyperparameter values of ``genotype``; UserError if it is not in the space."""
        genotype = load_genotype(genotype)
        ref = self.reference
        closed = ("resolution", "activation") + tuple(
            c for c in NETWORK_CHOICES if f"network/{c}" not in self._decisions)
        if any(getattr(genotype, key) != getattr(ref, key) for key in closed):
            raise UserError("genotype is not in the space: its stem, head, resolution or activation "
                            "differs from the reference's")
        values: dict = {}
        for choice in NETWORK_CHOICES:
            name, value = f"network/{choice}", getattr(genotype, choice)
            if name in self._decisions:
                if value not in self.choices(name):
                    raise UserError(f"genotype is not in the space: {choice} {value} not in "
                                    f"{list(self.choices(name))}")
                values[name] = value
        if len(genotype.stages) != len(ref.stages):
            raise UserError(f"genotype is not in the space: {len(genotype.stages)} stages, "
                            f"the reference has {len(ref.stages)}")
        for number, (stage, ref_stage) in enumerate(zip(genotype.stages, ref.stages), start=1):
            if number not in self.stages:
                if stage != ref_stage:
                    raise UserError(f"genotype is not in the space: stage {number} is not searched "
                                    "and differs from the reference")
                continue
            if stage.stride != ref_stage.stride or (
                    "activation" not in self.open and stage.activation != ref_stage.activation):
                raise UserError(f"genotype is not in the space: stage {number} stride or activation "
                                "differs from the reference")
            prefix = f"stage{number}/"
            for choice in CHOICES:
                name = prefix + choice
                value = getattr(stage, choice)
                if choice == "activation":
                    value = value or ref.activation
                    closed = ref_stage.activation or ref.activation
                    if name not in self._decisions:
                        if value != closed:
                            raise UserError(f"genotype is not in the space: stage {number} activation "
                                            f"{value!r} but that choice is closed at {closed!r}")
                        continue
                if name not in self._decisions:
                    closed = getattr(ref_stage, choice)
                    if choice == "expand" and (not block_type(stage.block).expands or
                                               (not block_type(ref_stage.block).expands and value == 1)):
                        continue
                    if value != closed:
                        raise UserError(f"genotype is not in the space: stage {number} {choice} "
                                        f"{value!r} but that choice is closed at {closed!r}")
                    continue
                if not self.is_active(name, values):
                    continue
                allowed = self.choices(name)
                match = [a for a in allowed if a == value and isinstance(a, bool) == isinstance(value, bool)]
                if not match:
                    raise UserError(f"genotype is not in the space: stage {number} {choice} {value!r} "
                                    f"not in {list(allowed)}")
                values[name] = match[0]
        return values

    # -- sampling (plain functions of a numpy Generator, used by the oracles) -----------------
    def random_values(self, rng) -> dict:
        """Uniformly random values (conditional choices only when active).

        >>> import numpy as np
        >>> space = SearchSpace("tiny")
        >>> v = space.random_values(np.random.default_rng(0))
        >>> space.to_values(space.to_genotype(v)) == v
        True
        """
        return sample_values(self.hyperparameters(), rng)

    def mutate(self, values: Mapping, rng) -> dict:
        """``values`` with exactly one open choice changed (see :func:`mutate_values`)."""
        return mutate_values(self.hyperparameters(), values, rng)

    def describe(self) -> str:
        """One line per open choice: name and values."""
        lines = [f"reference {self.reference.encode()}", f"size {self.size:,} genotypes"]
        for name, (choices, default, condition) in self._decisions.items():
            when = f"  (when {condition[0]} in {list(condition[1])})" if condition else ""
            lines.append(f"{name:<18} {list(choices)} default {default!r}{when}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"SearchSpace({self.reference.encode()!r}, open={self.open}, stages={self.stages})"


def log10_size(space: SearchSpace) -> float:
    """log10 of the space size (the MnasNet paper quotes its space as 10^13 per network)."""
    return math.log10(space.size)
