"""The family pipeline's configuration: typed sections, read from YAML or TOML, validated strictly.

Every key is checked before any work starts; an unknown key, a wrong type or a missing
dataset raises :class:`~effscale.errors.UserError` naming the key by its dotted path.

>>> config = FamilyConfig.from_dict({"dataset": "digits", "search": {"trials": 4}})
>>> config.search.trials, config.search.oracle, config.training.epochs
(4, 'evolution', 10)
>>> FamilyConfig.from_dict({"dataset": "digits", "search": {"trails": 4}})
Traceback (most recent call last):
...
effscale.errors.UserError: config key 'search.trails' is unknown: expected one of constraint, cost, enabled, epochs, oracle, proxy, reevaluate_seeds, resolution, seed, seeds, target, top_k, trials, width
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import typing
from dataclasses import dataclass, field

from effscale.errors import UserError

COSTS = ("macs", "params", "latency")


@dataclass(frozen=True)
class SearchConfig:
    """Search for a baseline genotype around ``FamilyConfig.baseline`` (step 0 of the paper)."""

    enabled: bool = True
    oracle: str = "evolution"
    cost: str = "macs"
    target: float = 2e6          # in units of ``cost``: multiply-adds, parameters or seconds
    constraint: str = "soft"
    trials: int = 8
    epochs: int = 2              # proxy-training epochs per trial
    resolution: int = 0          # proxy resolution; 0 = the baseline genotype's own
    width: float = 1.0           # proxy width multiplier
    seed: int = 0
    proxy: str = ""              # a proxy file from `effscale proxy`: its epochs, schedule, resolution, width
    seeds: int = 1               # training seeds per trial; the objective is their mean
    top_k: int = 3               # candidates re-evaluated at the end ...
    reevaluate_seeds: int = 0    # ... with this many seeds (0: no re-evaluation stage)

    def check(self) -> None:
        from effscale.search.registry import ORACLES

        _one_of("search.oracle", self.oracle, ORACLES)
        _one_of("search.cost", self.cost, COSTS)
        _one_of("search.constraint", self.constraint, ("soft", "hard"))
        _positive("search.target", self.target)
        _at_least("search.trials", self.trials, 1)
        _at_least("search.epochs", self.epochs, 1)
        if self.resolution:
            _at_least("search.resolution", self.resolution, 8)
        _positive("search.width", self.width)
        _at_least("search.seeds", self.seeds, 1)
        _at_least("search.top_k", self.top_k, 1)
        if self.reevaluate_seeds:
            _at_least("search.reevaluate_seeds", self.reevaluate_seeds, 2)
        if self.proxy:
            from effscale.search.proxy import read_proxy_file

            try:
                read_proxy_file(self.proxy)
            except UserError as error:
                raise UserError(f"config key 'search.proxy': {error}") from None


@dataclass(frozen=True)
class CoefficientConfig:
    """Compound coefficients alpha (depth), beta (width), gamma (resolution).

    With ``search`` on, a Keras Tuner grid search at phi = 1 picks them on the proxy task
    among the triples with alpha * beta^2 * gamma^2 within ``tolerance`` of 2 (paper step 1).
    """

    search: bool = False
    alpha: float = 1.2
    beta: float = 1.1
    gamma: float = 1.15
    grid_step: float = 0.05
    tolerance: float = 0.1
    max_trials: int = 6
    epochs: int = 2

    def check(self) -> None:
        for key in ("alpha", "beta", "gamma"):
            value = getattr(self, key)
            if not 1.0 <= value <= 4.0:
                raise UserError(f"config key 'coefficients.{key}' must be in 1..4, got {value}")
        _positive("coefficients.grid_step", self.grid_step)
        _positive("coefficients.tolerance", self.tolerance)
        _at_least("coefficients.max_trials", self.max_trials, 1)
        _at_least("coefficients.epochs", self.epochs, 1)


@dataclass(frozen=True)
class ScalingConfig:
    """Which variants make the family: any spelling :func:`effscale.resolve_family` accepts.

    ``base`` rescales the searched genotype first (e.g. ``w=0.5,d=0.5,r=32`` for small data);
    family members then scale that base by their own width, depth and resolution.
    """

    family: str = "phi=0..2"
    base: str = ""

    def check(self) -> None:
        if not isinstance(self.family, str) or not self.family.strip():
            raise UserError("config key 'scaling.family' must be a non-empty family spec such as 'phi=0..2'")


@dataclass(frozen=True)
class TrainingConfig:
    epochs: int = 10
    batch_size: int = 64
    strategy: str = "auto"
    mixed_precision: str = "auto"
    augment: bool = False
    recipe: dict = field(default_factory=dict)   # effscale.recipe.Recipe fields

    def check(self) -> None:
        _at_least("training.epochs", self.epochs, 1)
        _at_least("training.batch_size", self.batch_size, 1)
        _one_of("training.strategy", self.strategy, ("auto", "default", "mirrored", "multiworker", "tpu"))
        _one_of("training.mixed_precision", self.mixed_precision, ("auto", "off"))


@dataclass(frozen=True)
class FamilyConfig:
    """Everything one family run needs. ``dataset`` is required."""

    dataset: str = ""
    baseline: str = "tiny"
    data_dir: str = ""
    validation_fraction: float = 0.2
    seed: int = 0
    search: SearchConfig = field(default_factory=SearchConfig)
    coefficients: CoefficientConfig = field(default_factory=CoefficientConfig)
    scaling: ScalingConfig = field(default_factory=ScalingConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    # Points drawn beside the family in the report: name -> {multiply_adds: N, top1: 0..1}.
    reference_points: dict = field(default_factory=dict)
    # Also scale and train the un-searched baseline exactly like the searched one, so the
    # report shows whether the search helped (no effect when the search is off).
    reference_family: bool = True

    def check(self) -> "FamilyConfig":
        if not isinstance(self.dataset, str) or not self.dataset.strip():
            raise UserError("config key 'dataset' is missing: name a dataset ('digits', 'tfds:NAME' or a folder)")
        if not 0 < self.validation_fraction < 1:
            raise UserError(f"config key 'validation_fraction' must be in (0, 1), got {self.validation_fraction}")
        from effscale.data import check_source

        try:
            check_source(self.dataset, self.data_dir or None)
        except UserError as error:
            raise UserError(f"config key 'dataset': {error}") from None
        from effscale.zoo import load_genotype

        try:
            load_genotype(self.baseline)
        except UserError as error:
            raise UserError(f"config key 'baseline': {error}") from None
        for section in (self.search, self.coefficients, self.scaling, self.training):
            section.check()
        for name, point in self.reference_points.items():
            if not (isinstance(point, dict) and set(point) == {"multiply_adds", "top1"}
                    and all(isinstance(v, (int, float)) and v >= 0 for v in point.values())):
                raise UserError(f"config key 'reference_points.{name}' must be a mapping with numbers "
                                "multiply_adds and top1 (0..1)")
        self._check_scaling()
        self._check_recipe()
        return self

    def _check_scaling(self) -> None:
        from effscale.zoo import load_genotype
        from effscale.variants import resolve_family, resolve_variant

        genotype = load_genotype(self.baseline)
        try:
            if self.scaling.base:
                resolve_variant(self.scaling.base, genotype)
        except UserError as error:
            raise UserError(f"config key 'scaling.base': {error}") from None
        try:
            resolve_family(self.scaling.family, genotype)
        except UserError as error:
            raise UserError(f"config key 'scaling.family': {error}") from None

    def _check_recipe(self) -> None:
        if not self.training.recipe:
            return
        from effscale.recipe import Recipe

        try:
            Recipe.from_dict(dict(self.training.recipe))
        except (UserError, TypeError, ValueError) as error:
            raise UserError(f"config key 'training.recipe': {error}") from None

    # -- plain-data forms --------------------------------------------------------------------
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "FamilyConfig":
        return _build(cls, data, "").check()

    @classmethod
    def load(cls, path: str, overrides: dict | None = None) -> "FamilyConfig":
        """Read a YAML (.yaml/.yml) or TOML (.toml) file, apply dotted-key overrides, validate."""
        data = read_config_file(path) if path else {}
        for dotted, value in (overrides or {}).items():
            set_dotted(data, dotted, value)
        return cls.from_dict(data)


def read_config_file(path: str) -> dict:
    if not os.path.isfile(path):
        raise UserError(f"config file {path!r} does not exist")
    extension = os.path.splitext(path)[1].lower()
    try:
        if extension in (".yaml", ".yml"):
            import yaml

            with open(path) as handle:
                data = yaml.safe_load(handle)
        elif extension == ".toml":
            import tomllib

            with open(path, "rb") as handle:
                data = tomllib.load(handle)
        elif extension == ".json":
            with open(path) as handle:
                data = json.load(handle)
        else:
            raise UserError(f"config file {path!r}: expected a .yaml, .yml, .toml or .json file")
    except UserError:
        raise
    except Exception as error:  # the parsers' own error types differ; all mean "does not parse"
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(f"config file {path!r} does not parse: {message}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(f"config file {path!r} must hold a mapping of keys, got {type(data).__name__}")
    return data


def set_dotted(data: dict, dotted: str, value) -> None:
    """Set ``a.b.c`` in a nested dict, creating sections on the way."""
    keys = dotted.split(".")
    for key in keys[:-1]:
        data = data.setdefault(key, {})
        if not isinstance(data, dict):
            raise UserError(f"config key {dotted!r}: {key!r} is not a section")
    data[keys[-1]] = value


def _build(cls, data, path: str):
    if not isinstance(data, dict):
        raise UserError(f"config key {path or 'top level'!r} must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    values = {}
    for key, value in data.items():
        dotted = f"{path}.{key}" if path else str(key)
        if key not in names:
            raise UserError(f"config key {dotted!r} is unknown: expected one of {', '.join(sorted(names))}")
        values[key] = _coerce(hints[key], value, dotted)
    return cls(**values)


def _coerce(kind, value, dotted: str):
    if dataclasses.is_dataclass(kind):
        return _build(kind, value, dotted)
    if kind is bool:
        if isinstance(value, bool):
            return value
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif kind is float:
        if isinstance(value, str):  # YAML reads 2e6 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    elif kind is str:
        if isinstance(value, str):
            return value
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return ";".join(value)  # a family given as a list of variant specs
    elif kind is dict:
        if isinstance(value, dict):
            return dict(value)
    else:  # pragma: no cover - every field type is listed above
        raise TypeError(kind)
    expected = {bool: "true or false", int: "an integer", float: "a number", str: "text", dict: "a mapping"}[kind]
    raise UserError(f"config key {dotted!r} must be {expected}, got {value!r}")


def _one_of(key: str, value, choices) -> None:
    if value not in choices:
        raise UserError(f"config key {key!r} is {value!r}: expected one of {', '.join(choices)}")


def _positive(key: str, value) -> None:
    if not value > 0:
        raise UserError(f"config key {key!r} must be positive, got {value}")


def _at_least(key: str, value, minimum: int) -> None:
    if value < minimum:
        raise UserError(f"config key {key!r} must be at least {minimum}, got {value}")
