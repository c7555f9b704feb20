"""The family pipeline's configuration: typed sections, read from YAML or TOML, validated strictly.

Every key is checked before any work starts; an unknown key, a wrong type or a missing
dataset raises :class:`~effscale.common.errors.UserError` naming the key by its dotted path.

>>> config = FamilyConfig.from_dict({"dataset": "digits", "search": {"trials": 4}})
>>> config.search.trials, config.search.oracle, config.training.epochs
(4, 'evolution', 10)
>>> FamilyConfig.from_dict({"dataset": "digits", "search": {"trails": 4}})
Traceback (most recent call last):
...
effscale.common.errors.UserError: config key 'search.trails' is unknown: expected one of alpha, beta, constraint, cost, depth, enabled, epochs, latency, max_latency, max_macs, max_params, open_choices, options, oracle, oracle_options, prescreen, proxy, reevaluate_seeds, resolution, seed, seeds, stages, target, top_k, top_rung_augment, train_fraction, trials, width, workers
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import types
import typing
from dataclasses import dataclass, field

from effscale.common.errors import UserError
from effscale.common.checks import BATCH_MAX, COUNT_MAX, EPOCHS_MAX, SEED_MAX, shorten
from effscale.search.config import SearchConfig, option_error

COSTS = ("macs", "params", "latency")


@dataclass(frozen=True)
class FamilySearchConfig(SearchConfig):
    """The search section (step 0 of the paper): every :class:`effscale.search.SearchConfig`
    option by its own name, validated by it, plus ``enabled`` and ``workers`` (N >= 1: the search
    trains N trials at once in local worker processes, as ``effscale search --workers N``; how the
    search runs, not what it searches, so a resumed run may change it); ``baseline`` and
    ``dataset`` are the config's top-level keys. Family defaults: 8 trials of 2 epochs, target 2e6.

    >>> FamilySearchConfig(workers=2).workers, FamilySearchConfig().search_config().trials
    (2, 8)
    """

    trials: int = 8
    epochs: int = 2
    target: float | None = 2e6       # in units of ``cost``: multiply-adds, parameters or seconds
    enabled: bool = True
    workers: int = 0

    def __post_init__(self):
        if not isinstance(self.enabled, bool):
            raise option_error("enabled", f"enabled must be true or false, got {self.enabled!r}")
        from effscale.search.local_workers import check_workers

        try:
            check_workers(self.workers)
        except UserError as error:
            raise option_error("workers", str(error)) from None
        super().__post_init__()

    @classmethod
    def keys(cls) -> list[str]:
        return [key for key in super().keys() if key not in ("baseline", "dataset")]

    @classmethod
    def from_dict(cls, data, where: str | None = "search", baseline="tiny", dataset="digits"):
        """The section as a config file holds it, for the run's ``baseline`` and ``dataset``."""
        if isinstance(data, dict):
            for key in ("baseline", "dataset"):
                if key in data:
                    raise UserError(f"config key '{where}.{key}' is set by the top-level key {key!r}")
            data = dict(data)
        return super().from_dict(data, where, baseline=baseline, dataset=dataset)

    def section(self) -> dict:
        """The section's plain data (without the top-level baseline and dataset)."""
        data = self.to_dict()
        return {key: data[key] for key in self.keys()}

    def search_config(self) -> SearchConfig:
        """The :class:`effscale.search.SearchConfig` this section runs."""
        return SearchConfig(**{f.name: getattr(self, f.name) for f in dataclasses.fields(SearchConfig)})


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
        _at_least("coefficients.max_trials", self.max_trials, 1, COUNT_MAX)
        _at_least("coefficients.epochs", self.epochs, 1, EPOCHS_MAX)


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
    augment: bool | str = False                # or "resized-crop" / "padded-crop"
    recipe: dict = field(default_factory=dict)   # effscale.training.recipe.Recipe fields

    def check(self) -> None:
        _at_least("training.epochs", self.epochs, 1, EPOCHS_MAX)
        _at_least("training.batch_size", self.batch_size, 1, BATCH_MAX)
        _one_of("training.strategy", self.strategy, ("auto", "default", "mirrored", "multiworker", "tpu"))
        _one_of("training.mixed_precision", self.mixed_precision, ("auto", "off"))
        if self.augment not in (True, False, "resized-crop", "padded-crop"):
            raise UserError("config key 'training.augment' must be true, false, 'resized-crop' or 'padded-crop', "
                            f"got {shorten(self.augment)}")


@dataclass(frozen=True)
class FamilyConfig:
    """Everything one family run needs. ``dataset`` is required."""

    dataset: str = ""
    baseline: str = "tiny"
    data_dir: str = ""
    validation_fraction: float = 0.2
    seed: int = 0
    search: FamilySearchConfig = field(default_factory=FamilySearchConfig)
    coefficients: CoefficientConfig = field(default_factory=CoefficientConfig)
    scaling: ScalingConfig = field(default_factory=ScalingConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    # Points drawn beside the family in the report: name -> {multiply_adds: N, top1: 0..1}.
    reference_points: dict = field(default_factory=dict)
    # Also scale and train the un-searched baseline exactly like the searched one, so the
    # report shows whether the search helped (no effect when the search is off).
    reference_family: bool = True

    @property
    def data(self) -> "DataSpec":
        """The run's data as one value, handed to the dataset check, the coefficient search and every
        member's training (the split seed stays 0: ``seed`` is the training's)."""
        from effscale.data.spec import DataSpec

        return DataSpec(self.dataset, data_dir=self.data_dir or None, validation_fraction=self.validation_fraction)

    def check(self) -> "FamilyConfig":
        self._check_top_level()
        if (self.search.baseline, self.search.dataset) != (self.baseline, self.dataset):
            object.__setattr__(self, "search", FamilySearchConfig.from_dict(
                self.search.section(), "search", baseline=self.baseline, dataset=self.dataset))
        for section in (self.coefficients, self.scaling, self.training):
            section.check()
        self._search_to_the_final_schedule()
        for name, point in self.reference_points.items():
            if not (isinstance(point, dict) and set(point) == {"multiply_adds", "top1"}
                    and all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < math.inf
                            for v in point.values())):
                raise UserError(f"config key 'reference_points.{name}' must be a mapping with numbers "
                                "multiply_adds and top1 (0..1)")
        self._check_scaling()
        self._check_recipe()
        return self

    def _search_to_the_final_schedule(self) -> None:
        """A multi-fidelity search's top rung trains for the members' epochs and with their
        augmentation, unless the search section sets them."""
        from effscale.search.registry import oracle_entry

        option = oracle_entry(self.search.oracle).final_epochs_option
        if not option:
            return
        section = self.search.section()
        if option not in self.search.oracle_options:
            section["oracle_options"] = {**self.search.oracle_options, option: self.training.epochs}
        if self.training.augment and self.search.top_rung_augment is None:
            augment = self.training.augment
            section["top_rung_augment"] = "resized-crop" if augment is True else augment
        object.__setattr__(self, "search", FamilySearchConfig.from_dict(
            section, "search", baseline=self.baseline, dataset=self.dataset))

    def _check_top_level(self) -> None:
        if not isinstance(self.dataset, str) or not self.dataset.strip():
            raise UserError("config key 'dataset' is missing: name a dataset ('digits', 'tfds:NAME' or a folder)")
        if not 0 <= self.seed <= SEED_MAX:
            raise UserError(f"config key 'seed' must be an integer in 0..{SEED_MAX}, got {shorten(self.seed)}")
        if not 0 < self.validation_fraction < 1:
            raise UserError(f"config key 'validation_fraction' must be in (0, 1), got {self.validation_fraction}")
        from effscale.data.pipeline import check_source

        try:
            check_source(self.dataset, self.data_dir or None)
        except UserError as error:
            raise UserError(f"config key 'dataset': {error}") from None
        from effscale.model.zoo import load_genotype

        try:
            load_genotype(self.baseline)
        except UserError as error:
            raise UserError(f"config key 'baseline': {error}") from None

    def _check_scaling(self) -> None:
        from effscale.model.zoo import load_genotype
        from effscale.model.variants import resolve_family, resolve_variant

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
        from effscale.training.recipe import Recipe

        try:
            Recipe.from_dict(dict(self.training.recipe))
        except (UserError, TypeError, ValueError) as error:
            raise UserError(f"config key 'training.recipe': {error}") from None

    # -- plain-data forms --------------------------------------------------------------------
    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["search"] = self.search.section()
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "FamilyConfig":
        if not isinstance(data, dict) or not isinstance(data.get("search", {}), dict):
            return _build(cls, data, "").check()  # the one-line error naming what is not a mapping
        rest = {key: value for key, value in data.items() if key != "search"}
        config = _build(cls, rest, "")
        config._check_top_level()
        if "search" in data:
            object.__setattr__(config, "search", FamilySearchConfig.from_dict(
                data["search"], "search", baseline=config.baseline, dataset=config.dataset))
        return config.check()

    @classmethod
    def load(cls, path: str, overrides: dict | None = None) -> "FamilyConfig":
        """Read a YAML (.yaml/.yml) or TOML (.toml) file, apply dotted-key overrides, validate."""
        data = read_config_file(path) if path else {}
        for dotted, value in (overrides or {}).items():
            set_dotted(data, dotted, value)
        return cls.from_dict(data)


CONFIG_FILE_MAX = 1 << 20  # bytes: a family config is a few hundred


class _Refused(Exception):
    """A config file construct refused while parsing (repeated key, YAML alias)."""


def _strict_yaml_loader():
    """A ``yaml.SafeLoader`` that refuses a key repeated in one mapping (PyYAML keeps the last
    silently) and any alias (``*name``): a config needs none, and aliases are how a few hundred
    bytes expand into gigabytes (the "billion laughs" of YAML)."""
    import yaml

    class StrictLoader(yaml.SafeLoader):
        def compose_node(self, parent, index):
            if self.check_event(yaml.events.AliasEvent):
                event = self.peek_event()
                raise _Refused(f"uses the alias *{event.anchor} (line {event.start_mark.line + 1}); "
                               "aliases are not accepted in config files: write the value out")
            return super().compose_node(parent, index)

        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    repeated = key in seen
                    seen.add(key)
                except TypeError:  # an unhashable key: PyYAML's own error follows
                    repeated = False
                if repeated:
                    from effscale.common.checks import shorten

                    raise _Refused(f"key {shorten(key)} is repeated (line {key_node.start_mark.line + 1}); "
                                   "each key may appear once in a section")
            return super().construct_mapping(node, deep)

    return StrictLoader


def _json_pairs(pairs):
    from effscale.common.checks import shorten

    data = {}
    for key, value in pairs:
        if key in data:
            raise _Refused(f"key {shorten(key)} is repeated; each key may appear once in an object")
        data[key] = value
    return data


def _toml_problem(message: str, text: str) -> str | None:
    """tomllib's "Cannot overwrite a value (at line 3, column 7)" with the repeated key named;
    None for any other error (the caller reports it as a file that does not parse)."""
    import re

    match = re.search(r"Cannot overwrite a value \(at line (\d+)", message)
    if match:
        lines = text.splitlines()
        number = int(match.group(1))
        if 0 < number <= len(lines):
            from effscale.common.checks import shorten

            key = lines[number - 1].split("=", 1)[0].strip()
            return f"key {shorten(key)} is repeated (line {number}); each key may appear once in a table"
    return None


def read_config_file(path: str) -> dict:
    """The mapping in a YAML, TOML or JSON config file. A repeated key, a YAML alias, a file over
    1 MiB or one that does not parse is one UserError naming the file (and the key).

    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "family.yaml")
    >>> _ = open(path, "w").write("dataset: digits\\nseed: 1\\nseed: 2\\n")
    >>> read_config_file(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    effscale.common.errors.UserError: config file '...family.yaml': key 'seed' is repeated (line 3); each key may appear once in a section
    """
    if not os.path.isfile(path):
        raise UserError(f"config file {path!r} does not exist")
    extension = os.path.splitext(path)[1].lower()
    if extension not in (".yaml", ".yml", ".toml", ".json"):
        raise UserError(f"config file {path!r}: expected a .yaml, .yml, .toml or .json file")
    size = os.path.getsize(path)
    if size > CONFIG_FILE_MAX:
        raise UserError(f"config file {path!r} is {size:,} bytes, more than {CONFIG_FILE_MAX:,}: not a config file")
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
        text = raw.decode("utf-8")
        if extension in (".yaml", ".yml"):
            import yaml

            data = yaml.load(text, Loader=_strict_yaml_loader())  # noqa: S506 - a SafeLoader subclass
        elif extension == ".toml":
            import tomllib

            try:
                data = tomllib.loads(text)
            except tomllib.TOMLDecodeError as error:
                repeated = _toml_problem(str(error), text)
                if repeated is None:
                    raise
                raise _Refused(repeated) from None
        else:
            data = json.loads(text, object_pairs_hook=_json_pairs)
    except _Refused as problem:
        raise UserError(f"config file {path!r}: {problem}") from None
    except Exception as error:  # the parsers' own error types differ; all mean "does not parse"
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(f"config file {path!r} does not parse: {message[:200]}") from None
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
    if isinstance(kind, types.UnionType):  # e.g. ``bool | str``: the first member that takes the value
        for member in kind.__args__:
            try:
                return _coerce(member, value, dotted)
            except UserError:
                pass
        raise UserError(f"config key {dotted!r} must be one of {kind}, got {shorten(value)}")
    if kind is bool:
        if isinstance(value, bool):
            return value
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif kind is float:
        from effscale.common.checks import parse_float

        try:  # YAML reads 2e6 (no dot) as a string; ASCII digits only, finite, within the float range
            return parse_float(value, dotted)
        except UserError:
            pass
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
    raise UserError(f"config key {dotted!r} must be {expected}, got {shorten(value)}")


def _one_of(key: str, value, choices) -> None:
    if value not in choices:
        raise UserError(f"config key {key!r} is {value!r}: expected one of {', '.join(choices)}")


def _positive(key: str, value) -> None:
    if not value > 0:
        raise UserError(f"config key {key!r} must be positive, got {value}")


def _at_least(key: str, value, minimum: int, maximum: int) -> None:
    if value < minimum:
        raise UserError(f"config key {key!r} must be at least {minimum}, got {shorten(value)}")
    if value > maximum:
        raise UserError(f"config key {key!r} must be at most {maximum:,}, got {shorten(value)}")
