"""A tabular objective: architectures are looked up in a table of proxy-trained results
instead of being trained, so any oracle runs a 100-trial search in seconds.

The table (``benchmarks/tabular/table.json``) is JSON ``{"meta": {...}, "rows": [...]}``:
``meta["space"]`` is the sub-space searched (:meth:`SearchSpace.to_dict`), ``meta["reward"]`` the
default :class:`~effscale.search.objectives.Reward`, and each row records one architecture (``key``,
``genotype``, ``values``, ``accuracy``, ``macs``, ``params``, ``latency``, ``train_seconds``, and
optionally ``accuracy_epoch1`` and zero-cost proxy scores). See docs/benchmarks.md.

A candidate that is in the sub-space but was not recorded gets the *nearest* recorded row: the
one with the fewest differing hyperparameter values over the space's active hyperparameters
(ties go to the smallest key, so lookups are deterministic and independent of the row order).
A candidate outside the sub-space, or any unrecorded one with ``nearest=False``, raises
:class:`NotInTable` (a :class:`~effscale.common.errors.UserError`) whose one-line message names its key.

>>> space = SearchSpace("tiny", open=("kernel",), stages=(2, 3))
>>> rows = [{"values": {"stage2/kernel": k2, "stage3/kernel": k3}, "accuracy": acc, "macs": macs}
...         for k2, k3, acc, macs in [(3, 3, 0.90, 1e6), (3, 5, 0.95, 2e6), (5, 5, 0.97, 4e6)]]
>>> objective = TabularObjective(build_table(space, rows, Reward("macs", 2e6)))
>>> len(objective.rows), objective.space.size
(3, 4)
>>> hit = objective.lookup({"stage2/kernel": 5, "stage3/kernel": 3})
>>> hit["accuracy"], hit["distance"], hit["exact"]
(0.9, 1, False)
>>> round(objective.evaluate({"stage2/kernel": 3, "stage3/kernel": 5})["reward"], 4)
0.95
"""

from __future__ import annotations

import csv
import json
import math
import os
import tempfile  # noqa: F401  (used by the doctests)
import time
from collections.abc import Mapping

import numpy as np

from effscale.common.errors import UserError
from effscale.model.genotype import Genotype
from effscale.model.zoo import load_genotype
from effscale.search.objectives import Reward
from effscale.search.space import SearchSpace

#: the columns :meth:`TabularObjective.evaluate` reports besides reward and cost
METRICS = ("accuracy", "macs", "params", "latency", "train_seconds")


class NotInTable(UserError):
    """A genotype outside the table's sub-space, or (exact lookup) one the table does not record.

    >>> issubclass(NotInTable, UserError)
    True
    """


def _same(a, b) -> bool:
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def build_table(space: SearchSpace, rows, reward: Reward, **meta) -> dict:
    """A table dict from ``rows`` that give ``values`` (or ``genotype``) and metric columns; the
    ``key``, ``genotype`` and ``values`` of each row are filled in. ``meta`` adds meta entries.

    >>> space = SearchSpace("tiny", open=("se",), stages=(1,))
    >>> table = build_table(space, [{"values": {"stage1/se": 0.0}, "accuracy": 0.5, "macs": 1.0}],
    ...                     Reward("macs", 1.0), machine="doc")
    >>> sorted(table["meta"]), table["rows"][0]["genotype"].split("-")[1]
    (['complete', 'count', 'machine', 'reward', 'space'], 'mb_r1_k3_s1_e1_c16')
    """
    out = []
    for index, row in enumerate(rows):
        row = dict(row)
        if "values" in row:
            genotype = space.to_genotype(row["values"])
        elif "genotype" in row:
            genotype = load_genotype(row["genotype"])
        else:
            raise UserError(f"row {index}: needs 'values' or 'genotype'")
        row.update(key=genotype.key, genotype=genotype.encode(), values=space.to_values(genotype))
        out.append(row)
    head = {"space": space.to_dict(), "reward": reward.to_dict(), "complete": True, "count": len(out)}
    head.update(meta)
    return {"meta": head, "rows": out}


def load_table(table) -> dict:
    """The table as a dict, from a path or an already loaded dict; UserError when malformed."""
    if isinstance(table, (str, os.PathLike)):
        try:
            with open(table) as handle:
                table = json.load(handle)
        except OSError as error:
            raise UserError(f"cannot read table {os.fspath(table)!r}: {error.strerror}") from None
        except ValueError as error:
            raise UserError(f"table {os.fspath(table)!r} is not JSON: {error}") from None
    if not isinstance(table, Mapping) or not isinstance(table.get("meta"), Mapping) \
            or not isinstance(table.get("rows"), list):
        raise UserError('a table is {"meta": {...}, "rows": [...]}')
    for name in ("space", "reward"):
        if name not in table["meta"]:
            raise UserError(f"table meta has no {name!r}")
    if not table["rows"]:
        raise UserError("the table has no rows")
    return table


class NearestRows:
    """The recorded row with the fewest differing codes (one integer per hyperparameter, -1 when
    inactive); ties go to the smallest key, so the answer does not depend on the row order.

    >>> NearestRows(np.array([[0, 1], [1, 1], [0, 0]]), ["c", "b", "a"]).find(np.array([1, 0]))  # "b" and "a" differ by one
    (2, 1)
    """

    def __init__(self, codes: np.ndarray, keys):
        self._order = np.array(sorted(range(len(keys)), key=lambda i: keys[i]), dtype=np.int64)
        self._sorted_codes = np.asarray(codes)[self._order]

    def find(self, code: np.ndarray) -> tuple[int, int]:
        """(row index, number of differing codes)."""
        differ = (self._sorted_codes != code).sum(axis=1)
        best = int(np.argmin(differ))
        return int(self._order[best]), int(differ[best])


class TabularObjective:
    """Look architectures up in a table (a path or a loaded dict; see the module docstring).

    Attributes: ``meta``, ``space`` (the :class:`SearchSpace` of ``meta["space"]``), ``rows`` (in
    the table's order), ``reward`` (the default :class:`Reward`, from ``meta["reward"]``),
    ``names`` (the hyperparameter names distances count over).
    """

    def __init__(self, table):
        table = load_table(table)
        self.meta = dict(table["meta"])
        self.space = SearchSpace.from_dict(self.meta["space"])
        self.reward = Reward.from_dict(self.meta["reward"])
        self.rows = list(table["rows"])
        self.names = tuple(name for name in self.space.names if len(self.space.choices(name)) > 1)
        codes = np.empty((len(self.rows), len(self.names)), dtype=np.int16)
        self._index: dict[str, int] = {}
        for i, row in enumerate(self.rows):
            for column in ("key", "accuracy"):
                if column not in row:
                    raise UserError(f"table row {i} has no {column!r}")
            genotype, values = self._resolve(row.get("genotype", row.get("values")))
            if genotype.key != row["key"]:
                raise UserError(f"table row {i}: key {row['key']} does not match its genotype ({genotype.key})")
            if row["key"] in self._index:
                raise UserError(f"table row {i}: key {row['key']} appears twice")
            self._index[row["key"]] = i
            codes[i] = self._codes(values)
        self._nearest = NearestRows(codes, [row["key"] for row in self.rows])
        self._cache: dict = {}
        self._rewards: dict[Reward, np.ndarray] = {}

    # -- lookups ---------------------------------------------------------------------------------
    def _resolve(self, candidate) -> tuple[Genotype, dict]:
        """(genotype, values) of a values dict, Genotype or genotype string; NotInTable when the
        candidate is outside the sub-space."""
        if isinstance(candidate, Mapping):
            try:
                genotype = self.space.to_genotype(candidate)
            except UserError as error:
                raise NotInTable(f"not in the table's sub-space: {error}") from None
        else:
            genotype = load_genotype(candidate)
        try:
            values = self.space.to_values(genotype)
        except UserError as error:
            raise NotInTable(f"genotype {genotype.key} is not in the table: {error}") from None
        return genotype, values

    def _codes(self, values: Mapping) -> np.ndarray:
        out = np.full(len(self.names), -1, dtype=np.int16)  # -1: inactive
        for j, name in enumerate(self.names):
            if name in values:
                out[j] = next(k for k, c in enumerate(self.space.choices(name)) if _same(c, values[name]))
        return out

    def lookup(self, candidate, nearest: bool = True) -> dict:
        """The recorded row of ``candidate`` (values dict, Genotype or genotype string) plus
        ``distance`` (how many hyperparameter values differ; 0 for an exact hit) and ``exact``.

        With ``nearest`` (default) an unrecorded candidate of the sub-space gets the nearest row;
        otherwise, and for any candidate outside the sub-space, :class:`NotInTable` is raised.

        >>> space = SearchSpace("tiny", open=("kernel",), stages=(2,))
        >>> objective = TabularObjective(build_table(space, [{"values": {"stage2/kernel": 3},
        ...     "accuracy": 0.9, "macs": 1e6}], Reward("macs", 1e6)))
        >>> objective.lookup({"stage2/kernel": 5}, nearest=False)
        Traceback (most recent call last):
        ...
        effscale.search.tabular.NotInTable: genotype 96e23a831f6734c7 is not recorded in the table (1 rows); use nearest=True for the closest one
        >>> objective.lookup({"stage2/kernel": 7})
        Traceback (most recent call last):
        ...
        effscale.search.tabular.NotInTable: not in the table's sub-space: stage2/kernel = 7 is not in the space: expected one of [3, 5]
        """
        hashable = _hashable(candidate)
        cached = self._cache.get(hashable) if hashable is not None else None
        if cached is None:
            genotype, values = self._resolve(candidate)
            index = self._index.get(genotype.key)
            if index is not None:
                cached = (index, 0, genotype.key)
            else:
                cached = self._nearest.find(self._codes(values)) + (genotype.key,)
            if hashable is not None:
                self._cache[hashable] = cached
        if cached[1] and not nearest:
            raise NotInTable(f"genotype {cached[2]} is not recorded in the table ({len(self.rows)} rows); "
                             "use nearest=True for the closest one")
        row = dict(self.rows[cached[0]])
        row.update(distance=cached[1], exact=cached[1] == 0)
        return row

    def index_of(self, candidate, nearest: bool = True) -> int:
        """The position in :attr:`rows` of :meth:`lookup`'s row (for columns as arrays)."""
        return self._index[self.lookup(candidate, nearest)["key"]]

    # -- rewards ---------------------------------------------------------------------------------
    def column(self, name: str) -> np.ndarray:
        """A column over the rows as floats (NaN where a row lacks it or holds null)."""
        return np.array([_float(row.get(name)) for row in self.rows], dtype=float)

    def rewards(self, reward: Reward | None = None) -> np.ndarray:
        """The reward of every row (NaN where accuracy or the cost is missing).

        >>> space = SearchSpace("tiny", open=("kernel",), stages=(2,))
        >>> objective = TabularObjective(build_table(space, [{"values": {"stage2/kernel": 3},
        ...     "accuracy": 0.8, "macs": 2e6}], Reward("macs", 1e6, "hard")))
        >>> objective.rewards().tolist()
        [0.4]
        """
        reward = reward or self.reward
        if reward not in self._rewards:
            out = []
            for accuracy, cost in zip(self.column("accuracy"), self.column(reward.cost)):
                out.append(reward(accuracy, cost) if math.isfinite(accuracy) and math.isfinite(cost) else math.nan)
            self._rewards[reward] = np.array(out, dtype=float)
        return self._rewards[reward]

    def evaluate(self, candidate, reward: Reward | None = None) -> dict:
        """What a trial of ``candidate`` would report, looked up (nearest row) instead of trained:
        ``reward`` (by ``reward``, default :attr:`reward`), ``accuracy``, ``cost`` (the reward's
        cost column), ``macs``, ``params``, ``latency``, ``train_seconds``, ``distance`` and the
        row's ``key``.

        >>> space = SearchSpace("tiny", open=("kernel",), stages=(2,))
        >>> objective = TabularObjective(build_table(space, [{"values": {"stage2/kernel": 3},
        ...     "accuracy": 0.8, "macs": 2e6, "params": 5e4}], Reward("macs", 1e6, "hard")))
        >>> result = objective.evaluate({"stage2/kernel": 5})
        >>> result["reward"], result["cost"], result["params"], result["latency"], result["distance"]
        (0.4, 2000000.0, 50000.0, None, 1)
        """
        reward = reward or self.reward
        row = self.lookup(candidate)
        out = {"reward": float(self.rewards(reward)[self._index[row["key"]]]),
               "cost": _float(row.get(reward.cost), None)}
        out.update({name: _float(row.get(name), None) for name in METRICS})
        out.update(distance=row["distance"], key=row["key"])
        return out

    def best(self, reward: Reward | None = None) -> dict:
        """The row with the highest reward (the table's optimum) plus its ``reward``."""
        rewards = self.rewards(reward)
        index = int(np.nanargmax(rewards))
        return dict(self.rows[index], reward=float(rewards[index]))


class HyperparameterTable:
    """A table over any finite Keras Tuner space (not only effscale's), so any oracle can be
    replayed on a public NAS benchmark table: each row gives a value for every active
    hyperparameter and the ``metric`` column is what a trial reports (the oracle's objective,
    maximized or minimized as that objective says).

    ``table``: a ``.csv`` path (a column per hyperparameter, empty where inactive, plus metric
    columns), a ``.json`` path holding a list of rows or ``{"rows": [...]}`` (each row flat or
    with a ``values`` dict), or such a list. Cells are matched to the hyperparameter's own
    values (``"32"`` -> 32, ``"true"`` -> True). Lookups are by the values of the active
    hyperparameters; an unrecorded candidate gets the nearest row (fewest differing values)
    unless ``nearest=False``. :func:`run_oracle` drives any oracle against it.

    >>> import keras_tuner
    >>> hp = keras_tuner.HyperParameters()
    >>> _ = hp.Choice("units", [16, 32]), hp.Boolean("dropout")
    >>> rows = [{"units": "16", "dropout": "false", "val_accuracy": "0.8"},
    ...         {"units": "32", "dropout": "true", "val_accuracy": "0.9"}]
    >>> table = HyperparameterTable(hp, rows, metric="val_accuracy")
    >>> table.evaluate({"units": 32, "dropout": True})["reward"], table.evaluate({"units": 32, "dropout": False})["distance"]
    (0.9, 1)
    """

    def __init__(self, hyperparameters, table, metric: str = "score", cost: str | None = None):
        from effscale.search.space import discrete_values

        self.hyperparameters, self.metric, self.cost = hyperparameters, metric, cost
        self.space = list(hyperparameters.space)
        self._choices = {hp.name: discrete_values(hp) for hp in self.space}
        self.rows = []
        codes, self._index = [], {}
        for i, raw in enumerate(_read_rows(table)):
            values = self._parse(raw.get("values", raw), i)
            if math.isnan(_float(raw.get(metric))):
                raise UserError(f"table row {i} has no number in its {metric!r} column")
            key = self.key(values)
            if key in self._index:
                raise UserError(f"table row {i}: {key} appears twice")
            self._index[key] = len(self.rows)
            self.rows.append(dict(raw, values=values, key=key))
            codes.append(self._codes(values))
        if not self.rows:
            raise UserError("the table has no rows")
        self._nearest = NearestRows(np.array(codes), [row["key"] for row in self.rows])

    def _parse(self, cells: Mapping, index: int) -> dict:
        values: dict = {}
        for hp in self.space:
            if not all(condition.is_active(values) for condition in hp.conditions):
                continue
            cell = cells.get(hp.name)
            match = [c for c in self._choices[hp.name] if _cell_is(cell, c)]
            if not match:
                raise UserError(f"table row {index}: {hp.name} = {cell!r} is not one of "
                                f"{list(self._choices[hp.name])}")
            values[hp.name] = match[0]
        return values

    def key(self, values: Mapping) -> str:
        """The canonical key of the active values (how rows are looked up)."""
        return json.dumps({k: values[k] for k in sorted(values)}, sort_keys=True)

    def _codes(self, values: Mapping) -> np.ndarray:
        return np.array([next((k for k, c in enumerate(self._choices[hp.name]) if hp.name in values
                               and _same(c, values[hp.name])), -1) for hp in self.space], dtype=np.int32)

    def lookup(self, values: Mapping, nearest: bool = True) -> dict:
        """The row of ``values`` plus ``distance`` and ``exact`` (see the class docstring)."""
        values = self._parse(values, -1)
        index = self._index.get(self.key(values))
        distance = 0
        if index is None:
            if not nearest:
                raise NotInTable(f"{self.key(values)} is not recorded in the table ({len(self.rows)} rows)")
            index, distance = self._nearest.find(self._codes(values))
        return dict(self.rows[index], distance=distance, exact=distance == 0)

    def rewards(self, reward=None) -> np.ndarray:
        """The metric of every row."""
        return np.array([_float(row[self.metric]) for row in self.rows])

    def evaluate(self, values: Mapping, reward=None) -> dict:
        """What a trial of ``values`` reports: ``reward`` (the metric), ``cost`` (the ``cost``
        column, if any), ``train_seconds`` (if the table has it), ``distance`` and ``key``."""
        row = self.lookup(values)
        return {"reward": _float(row[self.metric]), "cost": _float(row.get(self.cost), None) if self.cost else None,
                "train_seconds": _float(row.get("train_seconds"), None), "distance": row["distance"],
                "key": row["key"]}


def _cell_is(cell, choice) -> bool:
    if not isinstance(cell, str):
        return _same(cell, choice)
    text = cell.strip()
    if isinstance(choice, bool):
        return text.lower() in (("true", "1", "yes") if choice else ("false", "0", "no"))
    if isinstance(choice, (int, float)):
        return _float(text) == choice
    return text == str(choice)


def _read_rows(table) -> list:
    if isinstance(table, (str, os.PathLike)):
        path = os.fspath(table)
        try:
            with open(path, newline="") as handle:
                if path.lower().endswith(".csv"):
                    return list(csv.DictReader(handle))
                table = json.load(handle)
        except OSError as error:
            raise UserError(f"cannot read table {path!r}: {error.strerror}") from None
        except ValueError as error:
            raise UserError(f"table {path!r} is neither CSV nor JSON: {error}") from None
    if isinstance(table, Mapping):
        table = table.get("rows")
    if not isinstance(table, list) or not all(isinstance(row, Mapping) for row in table):
        raise UserError("a table is a list of rows (dicts), {\"rows\": [...]}, or a CSV file")
    return table


def run_oracle(oracle, objective: "TabularObjective | HyperparameterTable", trials: int,
               reward: Reward | None = None, tuner_id: str = "tabular", quiet: bool = True) -> list[dict]:
    """Drive a Keras Tuner ``oracle`` for up to ``trials`` trials, each scored by looking its
    candidate up in ``objective`` instead of training it: ``create_trial`` -> evaluate ->
    ``update_trial`` with the oracle's objective -> ``end_trial`` (COMPLETED). Stops early when
    the oracle stops (space exhausted). ``objective`` is a :class:`TabularObjective` or a
    :class:`HyperparameterTable` (any Keras Tuner space). One record per trial: its ``evaluate``
    result plus ``trial_id``, ``values`` and the seconds spent in ``create_seconds`` (the
    proposal) and ``end_seconds`` (``update_trial`` + ``end_trial``). ``quiet`` silences the
    oracle's per-trial display (``oracle.verbose = 0``).

    >>> import keras_tuner
    >>> from effscale.search.oracles import RegularizedEvolutionOracle
    >>> space = SearchSpace("tiny", open=("kernel",), stages=(2, 3))
    >>> rows = [{"values": {"stage2/kernel": a, "stage3/kernel": b}, "accuracy": 0.5 + 0.1 * a + 0.01 * b,
    ...          "macs": 1e6} for a in (3, 5) for b in (3, 5)]
    >>> objective = TabularObjective(build_table(space, rows, Reward("macs", 1e6)))
    >>> oracle = RegularizedEvolutionOracle(objective=keras_tuner.Objective("reward", "max"), max_trials=4,
    ...     hyperparameters=space.hyperparameters(), population_size=2, sample_size=2, seed=3)
    >>> from effscale.search._keras_tuner import set_project_dir
    >>> set_project_dir(oracle, tempfile.mkdtemp(), "doc")
    >>> records = run_oracle(oracle, objective, 4)
    >>> len(records), round(max(r["reward"] for r in records), 2)
    (4, 1.05)
    """
    if quiet:
        oracle.verbose = 0
    name = oracle.objective.name
    records = []
    for _ in range(trials):
        started = time.perf_counter()
        trial = oracle.create_trial(tuner_id)
        proposed = time.perf_counter()
        if trial.status != "RUNNING":
            break
        values = {k: v for k, v in trial.hyperparameters.values.items() if not k.startswith("tuner/")}
        result = objective.evaluate(values, reward)
        evaluated = time.perf_counter()
        oracle.update_trial(trial.trial_id, {name: result["reward"]})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
        ended = time.perf_counter()
        result.update(trial_id=trial.trial_id, values=values, create_seconds=proposed - started,
                      end_seconds=ended - evaluated)
        records.append(result)
    return records


def _float(value, missing=math.nan):
    if value is None or isinstance(value, bool):
        return missing
    try:
        return float(value)
    except (TypeError, ValueError):
        return missing


def _hashable(candidate):
    if isinstance(candidate, Mapping):
        try:
            return tuple(sorted((k, type(v).__name__, v) for k, v in candidate.items()))
        except TypeError:
            return None
    if isinstance(candidate, (str, Genotype)):
        return str(candidate)
    return None
