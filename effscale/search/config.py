"""The typed input of a search: :class:`SearchConfig` holds every search option and validates
them in one place; :meth:`SearchConfig.resolve` turns it into what a search runs with and the
:class:`SearchRecord` saved as ``search.json``'s ``config``.

>>> config = SearchConfig("tiny", oracle="random", trials=3, max_macs=2e6, stages=[2, 3])
>>> config.stages, config.limits_record()
((2, 3), {'max_macs': 2000000.0, 'max_params': None, 'max_latency': None})
>>> SearchConfig.from_dict({"trails": 3}, where="search")
Traceback (most recent call last):
...
effscale.common.errors.UserError: config key 'search.trails' is unknown: expected one of alpha, baseline, beta, constraint, cost, dataset, depth, epochs, latency, max_latency, max_macs, max_params, open_choices, options, oracle, oracle_options, prescreen, proxy, reevaluate_seeds, resolution, seed, seeds, stages, target, top_k, top_rung_augment, train_fraction, trials, width
>>> parse_target("400M")
400000000.0
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from effscale.common.errors import UserError

_SUFFIXES = {"k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "B": 1e9, "ms": 1e-3, "us": 1e-6, "s": 1.0}
DEFAULT_LATENCY = {"runs": 10, "warmup": 2, "threads": 1}


def parse_target(text) -> float:
    """A positive cost target: a number, optionally with k / M / G (or B) or ms / us / s.

    >>> parse_target("400M"), parse_target("5ms"), parse_target(3e6)
    (400000000.0, 0.005, 3000000.0)
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        from effscale.common.checks import check_float

        value = check_float(text, "target", 0, low_open=True)
    else:
        from effscale.common.checks import MAX_NUMBER_TEXT, shorten

        match = re.fullmatch(r"\s*([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(k|K|M|G|B|ms|us|s)?\s*", str(text),
                             re.ASCII) if len(str(text)) <= MAX_NUMBER_TEXT else None
        if not match:
            raise UserError(f"target {shorten(text)}: expected a positive number, optionally with k, M, G, ms or us")
        value = float(match.group(1)) * _SUFFIXES.get(match.group(2) or "s", 1.0)
    if not (math.isfinite(value) and value > 0):
        from effscale.common.checks import shorten

        raise UserError(f"target must be a positive number, got {shorten(text)}")
    return value


def option_error(key: str, message: str) -> UserError:
    """The UserError of a bad value of the search option ``key`` (kept as its ``key`` attribute,
    which a config file's reader prefixes with its section)."""
    error = UserError(message)
    error.key = key
    return error


def _checked(key: str, check, *args, **kwargs):
    try:
        return check(*args, **kwargs)
    except UserError as error:
        if getattr(error, "key", None) is None:
            error.key = key
        raise


def _integer(key: str, value, low: int, what: str = "a positive integer", high: int | None = None) -> int:
    from effscale.common.checks import shorten

    if not (isinstance(value, int) and not isinstance(value, bool) and value >= low):
        raise option_error(key, f"{key} must be {what}, got {shorten(value)}")
    if high is not None and value > high:
        raise option_error(key, f"{key} must be at most {high:,}, got {shorten(value)}")
    return value


def _number(key: str, value, optional: bool = True) -> float | None:
    from effscale.common.checks import MAX_NUMBER_TEXT, is_number_text, shorten

    if value is None and optional:
        return None
    # YAML reads 2e6 (no dot) as text; only ASCII decimal text, as parse_float reads it (Python's
    # float() also takes other scripts' digits, e.g. '\u0663' for 3, and 'inf' / 'nan')
    if isinstance(value, str) and len(value) <= MAX_NUMBER_TEXT and is_number_text(value):
        value = float(value)
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 1000:
        value = math.inf  # beyond the float range: refused below
    if not (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)):
        raise option_error(key, f"{key} must be a number, got {shorten(value)}")
    return float(value)


@dataclass(frozen=True)
class SearchConfig:
    """Every option of a search (see :func:`effscale.search.run_search` for their meaning).
    Constructing one validates it: a bad value raises a UserError naming the option. Lists
    become tuples, numbers floats, a target text such as ``"5ms"`` seconds."""

    baseline: object = "tiny"        # a registered name, a genotype string or JSON file, a Genotype
    oracle: str = "evolution"
    cost: str = "macs"               # macs, params or latency (s/image)
    target: float | None = None      # default: the baseline's own cost (latency needs one)
    constraint: str = "soft"
    trials: int = 10
    epochs: int = 1                  # proxy-training epochs (a proxy file sets its own)
    dataset: str = "digits"
    seed: int = 0
    resolution: int | None = None    # proxy resolution; default the baseline's, at most 64
    width: float = 1.0
    depth: float = 1.0
    alpha: float | None = None
    beta: float | None = None
    max_macs: float | None = None
    max_params: float | None = None
    max_latency: float | None = None
    open_choices: tuple | None = None  # default: every choice
    options: dict = field(default_factory=dict)
    stages: tuple | None = None      # default: every stage
    proxy: object = None             # ProxySettings, or a proxy file from `effscale proxy`
    oracle_options: dict = field(default_factory=dict)
    latency: dict = field(default_factory=lambda: dict(DEFAULT_LATENCY))
    prescreen: str | None = None     # "PROXY:N"
    seeds: int = 1
    top_k: int = 3
    reevaluate_seeds: int = 0
    train_fraction: float | None = None
    top_rung_augment: str | None = None  # a multi-fidelity oracle's top rung trains with it

    def __post_init__(self):
        from effscale.search.objectives import COST_KINDS, Limits, exponents
        from effscale.search.registry import check_oracle, check_oracle_options
        from effscale.model.zoo import load_genotype

        def put(key, value):
            object.__setattr__(self, key, value)

        for key in ("oracle", "cost", "constraint") + (("prescreen",) if self.prescreen is not None else ()):
            if not isinstance(getattr(self, key), str):
                raise option_error(key, f"{key} must be text, got {getattr(self, key)!r}")
        genotype = _checked("baseline", load_genotype, self.baseline)
        _checked("oracle", check_oracle, self.oracle)
        if self.cost not in COST_KINDS:
            raise option_error("cost", f"unknown cost {self.cost!r}: expected one of {', '.join(COST_KINDS)}")
        from effscale.common.checks import COUNT_MAX, EPOCHS_MAX, SEED_MAX

        for key, low, high in (("trials", 1, COUNT_MAX), ("epochs", 1, EPOCHS_MAX), ("seeds", 1, 1_000),
                               ("top_k", 1, COUNT_MAX)):
            _integer(key, getattr(self, key), low, high=high)
        _integer("seed", self.seed, 0, "a non-negative integer", high=SEED_MAX)
        if self.prescreen is not None:
            from effscale.search.zero_cost import parse_prescreen

            put("prescreen", "{}:{}".format(*_checked("prescreen", parse_prescreen, self.prescreen)))
            _checked("prescreen", check_oracle, self.oracle, self.prescreen)
            if self.prescreen.startswith("reward:") and self.cost == "latency":
                raise option_error("prescreen", "prescreen reward needs a cost known before training: macs or params")
        if not (isinstance(self.reevaluate_seeds, int) and not isinstance(self.reevaluate_seeds, bool)
                and (self.reevaluate_seeds == 0 or 2 <= self.reevaluate_seeds <= 1_000)):
            from effscale.common.checks import shorten

            raise option_error("reevaluate_seeds", "reevaluate_seeds must be 0 (no re-evaluation) or in 2..1000, "
                              f"got {shorten(self.reevaluate_seeds)}")
        self._check_proxy()
        fraction = _number("train_fraction", self.train_fraction)
        if fraction is not None and not 0 < fraction <= 1:
            raise option_error("train_fraction", f"train_fraction must be in (0, 1], got {self.train_fraction!r}")
        put("train_fraction", fraction)
        self._check_top_rung_augment()
        self._check_space(genotype)
        if isinstance(self.resolution, float) and self.resolution.is_integer():
            put("resolution", int(self.resolution))
        if self.resolution is not None:
            _integer("resolution", self.resolution, 0, "an integer")
            if not 8 <= self.resolution <= 1024:
                raise option_error("resolution", f"resolution must be in 8..1024, got {self.resolution}")
        from effscale.model.scaling import Variant

        for key in ("width", "depth"):
            put(key, _number(key, getattr(self, key), optional=False))
        _checked("width", Variant, "proxy", self.width, 1.0, 32)
        _checked("depth", Variant, "proxy", 1.0, self.depth, 32)
        if self.target is not None:
            put("target", _checked("target", parse_target, self.target))
        elif self.cost == "latency":
            raise option_error("target", "cost 'latency' needs an explicit target (seconds per image)")
        for key in ("alpha", "beta", "max_macs", "max_params", "max_latency"):
            put(key, _number(key, getattr(self, key)))
        _checked("constraint", exponents, self.constraint, self.alpha, self.beta)
        for key in ("max_macs", "max_params", "max_latency"):
            _checked(key, Limits, **{key: getattr(self, key)})
        if not isinstance(self.dataset, str) or not self.dataset.strip():  # installed? run_search checks
            raise option_error("dataset", f"dataset must be a dataset name or folder, got {self.dataset!r}")
        for key, default in (("oracle_options", {}), ("latency", DEFAULT_LATENCY)):
            if getattr(self, key) is None:  # the keyword form's run_search(..., oracle_options=None)
                put(key, dict(default))
            if not isinstance(getattr(self, key), Mapping):
                raise option_error(key, f"{key} must be a mapping, got {getattr(self, key)!r}")
            put(key, dict(getattr(self, key)))
        _checked("oracle_options", check_oracle_options, self.oracle, self.oracle_options)

    def _check_top_rung_augment(self) -> None:
        from effscale.search.registry import oracle_entry

        if self.top_rung_augment is None:
            return
        if self.top_rung_augment not in TOP_RUNG_AUGMENTATIONS:
            raise option_error("top_rung_augment", "top_rung_augment must be one of "
                               f"{', '.join(TOP_RUNG_AUGMENTATIONS)}, got {self.top_rung_augment!r}")
        if oracle_entry(self.oracle).final_epochs_option is None:
            raise option_error("top_rung_augment", f"top_rung_augment needs a multi-fidelity oracle (asha); "
                               f"oracle {self.oracle!r} trains every candidate alike")

    def _check_proxy(self) -> None:
        from effscale.search.proxy import ProxySettings, read_proxy_file

        proxy = self.proxy
        if isinstance(proxy, Mapping):
            proxy = _checked("proxy", ProxySettings.from_dict, dict(proxy))
        elif isinstance(proxy, os.PathLike):
            proxy = os.fspath(proxy)
        if isinstance(proxy, str):
            _checked("proxy", read_proxy_file, proxy)
        elif proxy is not None and not isinstance(proxy, ProxySettings):
            raise option_error("proxy", f"proxy must be ProxySettings or a proxy file, got {proxy!r}")
        object.__setattr__(self, "proxy", proxy)

    def _check_space(self, genotype) -> None:
        from effscale.search.registry import oracle_entry
        from effscale.search.space import SearchSpace

        opened, stages = self.open_choices, self.stages
        if self.options is None:
            object.__setattr__(self, "options", {})
        if isinstance(opened, str):
            opened = [c.strip() for c in opened.split(",") if c.strip()]
        if opened is not None and not isinstance(opened, Mapping) and list(opened) == ["wide"]:
            from effscale.search.space import WIDE  # the wide space's choices and ranges; options given win

            opened = list(WIDE["open"])
            if isinstance(self.options, Mapping):
                object.__setattr__(self, "options", {**WIDE["options"], **self.options})
        for key, value, kind in (("open_choices", opened, str), ("stages", stages, int)):
            if value is not None and (isinstance(value, (str, Mapping)) or not hasattr(value, "__iter__") or not all(
                    isinstance(v, kind) and not isinstance(v, bool) for v in value)):
                what = "choice names" if kind is str else "stage numbers"
                raise option_error(key, f"{key} must be a list of {what}, got {value!r}")
        if not isinstance(self.options, Mapping) or not all(
                isinstance(v, (list, tuple)) for v in self.options.values()):
            raise option_error("options", f"options must map a choice to its values, got {self.options!r}")
        object.__setattr__(self, "open_choices", None if opened is None else tuple(opened))
        object.__setattr__(self, "stages", None if stages is None else tuple(stages))
        object.__setattr__(self, "options", {str(k): tuple(v) for k, v in self.options.items()})
        key = "stages" if self.stages is not None else "options" if self.options else "open_choices"
        space = _checked(key, SearchSpace, genotype, open=self.open_choices, options=self.options, stages=self.stages)
        check = oracle_entry(self.oracle).check_space
        if check is not None:
            from effscale.search.distributed import role

            _checked("oracle", check, space, self.cost, distributed=role() is not None)
        object.__setattr__(self, "_built", (genotype, space))  # built once: resolve() reuses them

    @property
    def space(self):
        """The :class:`~effscale.search.space.SearchSpace` the options describe (built by validation)."""
        return self._built[1]

    # -- plain-data forms --------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The options as plain JSON data, which :meth:`from_dict` reads back.

        >>> SearchConfig.from_dict(SearchConfig("tiny", stages=(2,)).to_dict()) == SearchConfig("tiny", stages=(2,))
        True
        """
        from effscale.model.genotype import Genotype
        from effscale.common.io import plain_json

        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if isinstance(self.baseline, Genotype):
            data["baseline"] = self.baseline.encode()
        if data["proxy"] is not None and not isinstance(data["proxy"], str):
            data["proxy"] = data["proxy"].to_dict()
        return plain_json(data)

    @classmethod
    def keys(cls) -> list[str]:
        return sorted(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_dict(cls, data, where: str | None = None, **given):
        """A config from plain data (a config file's section, :meth:`to_dict`): an unknown key or a
        bad value is one UserError; ``where`` (e.g. ``"search"``) prefixes the key it names.
        ``given``: fields set by the caller rather than the data."""
        def name(key):
            return f"config key '{where}.{key}'" if where else f"search option {key!r}"

        if not isinstance(data, Mapping):
            raise UserError(f"config key {where!r} must be a mapping, got {type(data).__name__}" if where
                            else f"search options must be a mapping, got {type(data).__name__}")
        known = cls.keys()
        for key in data:
            if key not in known:
                raise UserError(f"{name(key)} is unknown: expected one of {', '.join(known)}")
        try:
            return cls(**dict(data), **given)
        except UserError as error:
            if where is None or getattr(error, "key", None) is None:
                raise
            raise UserError(f"{name(error.key)}: {error}") from None

    @classmethod
    def from_record(cls, record: Mapping) -> "SearchConfig":
        """The config that resolves to a saved ``search.json`` ``config``.

        >>> config = SearchConfig("tiny", cost="params", stages=(2,), seeds=2, top_k=2, reevaluate_seeds=3)
        >>> again = SearchConfig.from_record(config.resolve(10).record.to_dict())
        >>> again.resolve(10).record == config.resolve(10).record
        True
        """
        from effscale.search.proxy import ProxySettings

        proxy = record["proxy"]
        space, reward, limits, reevaluate = record["space"], record["reward"], record["limits"], record["reevaluate"]
        return cls(baseline=space["reference"], open_choices=space.get("open"), options=space.get("options") or {},
                   stages=space.get("stages"), oracle=record["oracle"], dataset=record["dataset"],
                   **{k: reward.get(k) for k in ("cost", "target", "alpha", "beta")},
                   constraint=reward.get("constraint", "soft"), **{k: limits.get(k) for k in _LIMIT_KEYS},
                   proxy=ProxySettings.from_dict(proxy), resolution=record["resolution"],
                   width=record["width"], depth=record["depth"], trials=record["trials"], seed=record["seed"],
                   oracle_options=record["oracle_options"], latency=record["latency"], prescreen=record["prescreen"],
                   seeds=record["seeds"], top_k=reevaluate.get("top_k", 3), reevaluate_seeds=reevaluate.get("seeds", 0),
                   train_fraction=record["train_fraction"], top_rung_augment=record.get("top_rung_augment"))

    # -- what a search runs with ---------------------------------------------------------------
    def limits_record(self) -> dict:
        return {k: getattr(self, k) for k in _LIMIT_KEYS}

    def training(self) -> tuple:
        """How candidates train: ``(ProxySettings, resolution, width, train_fraction)``, a proxy
        file's settings and reductions applied (fraction None: the whole training split)."""
        from effscale.search.proxy import ProxySettings, read_proxy_file

        resolution, width, fraction = self.resolution, self.width, self.train_fraction
        if isinstance(self.proxy, str):
            task = read_proxy_file(self.proxy)
            settings = dataclasses.replace(task.settings, seed=self.seed)
            resolution, width, fraction = task.resolution or resolution, task.width, task.train_fraction
        else:
            settings = self.proxy or ProxySettings(epochs=self.epochs, seed=self.seed)
        fraction = None if fraction in (None, 1) else float(fraction)
        resolution = int(resolution) if resolution else min(self._built[0].resolution, 64)
        return settings, resolution, float(width), fraction

    def resolve(self, classes) -> "ResolvedSearch":
        """The search's parts: genotype, space, reward, limits, proxy settings and variant, and
        the record saved in ``search.json`` (a proxy file's settings and reductions applied).
        ``classes``: the dataset's class count, or a function returning it (called only when the
        default target, the baseline's own cost at that count, is needed);
        :func:`effscale.search.assembly.assemble` passes the search data's."""
        from effscale.search.objectives import Limits, Reward, analytic_costs

        genotype, space = self._built
        settings, resolution, width, fraction = self.training()
        if self.target is None:
            target = analytic_costs(genotype, int(classes() if callable(classes) else classes))[self.cost]
        else:
            target = self.target
        reward = Reward(self.cost, target, self.constraint, self.alpha, self.beta)
        limits = Limits(self.max_macs, self.max_params, self.max_latency)
        reevaluate = {"top_k": self.top_k, "seeds": self.reevaluate_seeds} if self.reevaluate_seeds else {}
        record = SearchRecord(space=space.to_dict(), oracle=self.oracle, reward=reward.to_dict(),
                              limits=limits.to_dict(), proxy=settings.to_dict(), dataset=self.dataset,
                              resolution=resolution, width=float(width), depth=self.depth, trials=self.trials,
                              seed=self.seed, oracle_options=dict(self.oracle_options), latency=dict(self.latency),
                              prescreen=self.prescreen, seeds=self.seeds, reevaluate=reevaluate,
                              train_fraction=fraction, top_rung_augment=self.top_rung_augment)
        return ResolvedSearch(genotype, space, reward, limits, settings, resolution, float(width), self.depth,
                              fraction, record)


_LIMIT_KEYS = ("max_macs", "max_params", "max_latency")
# What a multi-fidelity search's top rung may train with: the members' augmentations for small
# images ("padded-crop") and large ones ("resized-crop"), as effscale.data.pipeline.load_data does them.
TOP_RUNG_AUGMENTATIONS = ("padded-crop", "resized-crop")


@dataclass(frozen=True)
class ResolvedSearch:
    """A :class:`SearchConfig` resolved: the values a search runs with."""

    genotype: object
    space: object
    reward: object
    limits: object
    settings: object              # ProxySettings
    resolution: int
    width: float
    depth: float
    train_fraction: float | None
    record: "SearchRecord"

    @property
    def variant(self):
        """The proxy :class:`~effscale.model.scaling.Variant` every candidate trains at."""
        from effscale.model.scaling import Variant

        return Variant.explicit(self.width, self.depth, self.resolution)


@dataclass(frozen=True)
class SearchRecord:
    """A search as saved in ``search.json``'s ``config``: a rerun in the same project dir must
    match it (``trials`` may grow: the search then continues to the new budget)."""

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
    top_rung_augment: str | None = None  # the augmentation of a multi-fidelity search's top rung

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def mismatch(self, saved: dict) -> str | None:
        """The first key in which ``saved`` (a search.json ``config``) differs, or None."""
        mine = self.to_dict()
        for key in sorted(set(mine) | set(saved)):
            if key != "trials" and _normalize(mine.get(key)) != _normalize(saved.get(key)):  # trials may grow
                return key
        return None


def _normalize(value):
    from effscale.common.io import plain_json

    return plain_json(value)
