"""Search quality of effscale's oracles on the tabular benchmark: no training, only lookups.

Each oracle (Keras Tuner's RandomSearch, effscale's sampled-acquisition Bayesian optimization,
regularized evolution, REINFORCE and predictor-guided local search, plain and cost-aware, and
evolution or random search with a synflow or a cost-aware predicted-reward prescreen) runs
``--seeds`` searches of ``--trials`` trials; every candidate is scored by
:class:`effscale.search.tabular.TabularObjective`
(the nearest recorded architecture's reward). Written:

* ``OUT/study.json``: the raw per-trial rewards of every run, the summaries below, the settings;
* ``OUT/study.md``: the tables (best reward after 10 / 25 / 50 / 100 trials, how it compares
  with random search, wall-clock to reach a reward, rank correlations of the cheap proxies);
* ``--plot`` (default ``docs/img/tabular_search.png``): best-so-far against trials.

    .venv/bin/python benchmarks/tabular/study.py [--table benchmarks/tabular/table.json]
        [--seeds 20] [--trials 100] [--workers 2] [--out benchmarks/tabular] [--work OUT/work]

Resumable: every finished search is written (atomically) to ``WORK/study-FINGERPRINT/``, the
fingerprint naming the table's contents, the trial count and the oracle settings; rerunning the
same command after a kill or Ctrl-C reads those back and runs only the rest. ``--work ''``
keeps nothing.

The oracles are built by :func:`effscale.search.make_oracle` with their defaults (evolution:
population 10, tournament 3 drawn with replacement; REINFORCE: learning rate 0.2 per unit of
normalized advantage, baseline decay 0.9, entropy 0.01; predictor: 10 random initial points,
neighbours of the 10 best plus 100 random candidates, exploration 0.5; the ``bayesian`` row is
the ``bayesian-sampled`` oracle: 10 random initial points, alpha 1e-4, beta 2.6, ``--candidates``
sampled points per proposal, ``--gp-restarts`` GP-fit restarts; ``predictor+thompson``: cost-aware with a
Thompson-sample acquisition). ``predictor+cost``, ``predictor+thompson`` and the
``+reward`` prescreens know each candidate's cost exactly (its nearest row's multiply-adds, as
the trial will be scored) and the table's reward; the prescreens score ``--prescreen-n``
candidates per trial. The oracles' own state files are not written (a search is short and is
rerun whole; ``benchmarks/oracle_overhead.py`` times the oracles with them). ``--bayesian-acquisition stock``
runs Keras Tuner's own BayesianOptimization instead (over a minute per proposal at 1,000 trials).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import sys
import tempfile
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from effscale.common.errors import UserError  # noqa: E402
from effscale.common.io import read_json, write_json, write_text  # noqa: E402
from effscale.common.stats import rankdata, spearman  # noqa: E402,F401 (rankdata: re-exported for callers)
from effscale.search.tabular import TabularObjective, load_table, run_oracle  # noqa: E402

ORACLES = ("random", "bayesian", "evolution", "reinforce", "predictor", "predictor+cost", "predictor+thompson",
           "evolution+prescreen", "evolution+reward", "random+reward")
BUDGETS = (10, 25, 50, 100)
PROXY_COLUMNS = ("synflow", "grad_norm", "naswot", "params", "macs")
DEFAULT_TABLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "table.json")
DEFAULT_PLOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs", "img",
                            "tabular_search.png")


# -- statistics (rankdata and spearman live in effscale.common.stats) ----------------------------------
def superiority(a, b) -> float:
    """P(a draw from ``a`` beats one from ``b``), ties counting half (the Mann-Whitney AUC)."""
    a, b = np.asarray(a, dtype=float)[:, None], np.asarray(b, dtype=float)[None, :]
    return float(((a > b) + 0.5 * (a == b)).mean())


# -- one search ----------------------------------------------------------------------------------------
_OBJECTIVE: TabularObjective | None = None


def _init_worker(table) -> None:
    global _OBJECTIVE
    _OBJECTIVE = TabularObjective(table)
    warnings.filterwarnings("ignore", module="sklearn")


def proxy_scorer(objective: TabularObjective, column: str):
    """``score(list of values) -> (scores, row indexes)``: the zero-cost proxy ``column`` of each
    candidate's nearest row; rows without it score below every row that has it."""
    scores = objective.column(column)
    if not np.isfinite(scores).any():
        raise UserError(f"the table has no {column!r} scores")
    scores = np.where(np.isfinite(scores), scores, np.nanmin(scores) - 1.0)

    def score(candidates):
        index = [objective.index_of(values) for values in candidates]
        return [float(scores[i]) for i in index], index

    return score


def in_memory(oracle):
    """Skip the oracle's state files (the study caches whole searches instead, see RunCache)."""
    from effscale.search import _keras_tuner as internals

    internals.keep_in_memory(oracle)
    internals.set_project_dir(oracle, tempfile.gettempdir(), "effscale-tabular-study-unused")
    return oracle


def build_oracle(name: str, objective: TabularObjective, trials: int, seed: int, settings: dict):
    """(oracle, scored) for one study row; ``scored`` lists the row indexes of every candidate
    the prescreen scored, per trial index (empty for the other rows). UserError when the row is
    unavailable (e.g. make_oracle takes no prescreen yet)."""
    from effscale.search import make_oracle

    hp = objective.space.hyperparameters()
    scored: dict[int, list] = {}
    cost_fn = (lambda values: objective.evaluate(values)["cost"])  # the nearest row's cost, as scored
    if name == "evolution+prescreen":
        score = proxy_scorer(objective, settings["proxy"])
        holder: dict = {}

        def logged(candidates):
            values, index = score(candidates)
            scored.setdefault(len(holder["oracle"].trials), []).extend(index)
            return values

        try:
            oracle = make_oracle("evolution", max_trials=trials, hyperparameters=hp, seed=seed,
                                 prescreen=(logged, settings["prescreen_n"]))
        except (TypeError, UserError) as error:
            raise UserError(f"make_oracle does not accept prescreen: {error}") from None
        holder["oracle"] = oracle
    elif name.endswith("+reward"):
        from effscale.search.oracles.prescreen import PredictedReward

        screen = PredictedReward(hp, cost_fn, objective.reward)
        oracle = make_oracle(name.split("+")[0], max_trials=trials, hyperparameters=hp, seed=seed,
                             prescreen=(screen, settings["prescreen_n"]))
    elif name in ("predictor+cost", "predictor+thompson"):
        oracle = make_oracle("predictor", max_trials=trials, hyperparameters=hp, seed=seed, cost_fn=cost_fn,
                             reward=objective.reward, acquisition="thompson" if name.endswith("thompson") else "ucb")
    elif name == "bayesian" and settings["bayesian_acquisition"] == "sampled":
        oracle = make_oracle("bayesian-sampled", max_trials=trials, hyperparameters=hp, seed=seed,
                             candidates=settings["candidates"], gp_restarts=settings["gp_restarts"])
    else:
        oracle = make_oracle(name, max_trials=trials, hyperparameters=hp, seed=seed)
    return in_memory(oracle), scored


def one_blas_thread():
    """A context with one BLAS / OpenMP thread: the GP's linear algebra is small, and with a
    worker per core more threads only contend (a Bayesian proposal took ~4x longer without this
    on 2 busy cores)."""
    from threadpoolctl import threadpool_limits  # a scikit-learn dependency

    return threadpool_limits(limits=1)


def run_one(job) -> dict:
    """One search: ``job`` = (oracle name, seed, trials, settings); per-trial rewards, keys,
    lookup distances and simulated seconds (training + zero-cost scoring)."""
    with one_blas_thread():
        return _run_one(job)


def _run_one(job) -> dict:
    name, seed, trials, settings = job
    objective = _OBJECTIVE
    started = time.perf_counter()
    try:
        oracle, scored = build_oracle(name, objective, trials, seed, settings)
    except UserError as error:
        return {"oracle": name, "seed": seed, "available": False, "reason": str(error)}
    records = run_oracle(oracle, objective, trials)
    out = {"oracle": name, "seed": seed, "available": True, "rewards": [r["reward"] for r in records],
           "keys": [r["key"] for r in records], "distance": [r["distance"] for r in records],
           "train_seconds": [r["train_seconds"] for r in records],
           "proxy_seconds": [0.0] * len(records), "scored": [0] * len(records),
           "propose_ms": 1e3 * float(np.mean([r["create_seconds"] for r in records])),
           "run_seconds": time.perf_counter() - started}
    if name == "evolution+prescreen":
        if not scored:
            return {"oracle": name, "seed": seed, "available": False,
                    "reason": "make_oracle ignored prescreen (the score function was never called)"}
        seconds = objective.column("proxy_seconds")
        fallback = float(np.nanmedian(seconds)) if np.isfinite(seconds).any() else 0.0
        seconds = np.where(np.isfinite(seconds), seconds, fallback)
        for i in range(len(records)):
            rows = scored.get(i, [])
            out["scored"][i] = len(rows)
            out["proxy_seconds"][i] = float(seconds[rows].sum()) if rows else 0.0
    return out


# -- resume ----------------------------------------------------------------------------------------------
class RunCache:
    """Finished searches on disk, one JSON file each, so that a killed study resumes.

    The folder is named by a fingerprint of everything a search's result depends on (the table's
    rows and reward, the trial count, the oracle settings), so a changed table or setting never
    reads stale runs. ``folder=None`` caches nothing.

    >>> import tempfile
    >>> cache = RunCache(tempfile.mkdtemp(), {"rows": []}, 10, {"proxy": "synflow"})
    >>> cache.put({"oracle": "random", "seed": 3, "available": True, "rewards": [0.5]})
    >>> cache.get("random", 3)["rewards"], cache.get("random", 4)
    ([0.5], None)
    """

    def __init__(self, folder: str | None, table: dict, trials: int, settings: dict):
        text = json.dumps({"table": table, "trials": trials, "settings": settings}, sort_keys=True, default=str)
        self.fingerprint = hashlib.sha256(text.encode()).hexdigest()[:16]
        self.folder = os.path.join(folder, f"study-{self.fingerprint}") if folder else None
        if self.folder and os.path.isdir(self.folder):
            # A kill during a write leaves its temporary file; only the study writes here.
            for name in os.listdir(self.folder):
                if name.startswith(".tmp-"):
                    os.unlink(os.path.join(self.folder, name))

    def _path(self, oracle: str, seed: int) -> str:
        return os.path.join(self.folder, f"{oracle}-seed{seed}.json")

    def get(self, oracle: str, seed: int) -> dict | None:
        if self.folder is None or not os.path.exists(self._path(oracle, seed)):
            return None
        return read_json(self._path(oracle, seed))

    def put(self, run: dict) -> None:
        if self.folder is not None:
            os.makedirs(self.folder, exist_ok=True)
            write_json(self._path(run["oracle"], run["seed"]), run)


# -- the study -------------------------------------------------------------------------------------------
def trials_to_reach(curves: np.ndarray, target: float) -> int | None:
    """The first trial count at which the seed-mean best-so-far reaches ``target`` (None: never).

    >>> trials_to_reach(np.array([[0.1, 0.5, 0.9], [0.3, 0.3, 0.7]]), 0.4)
    2
    """
    hit = np.nonzero(curves.mean(axis=0) >= target - 1e-12)[0]
    return int(hit[0]) + 1 if len(hit) else None


def summarize(runs: list[dict], budgets, threshold: float, optimum: float, random_best=None,
              random_final: float | None = None) -> dict:
    curves = np.maximum.accumulate(np.array([r["rewards"] for r in runs], dtype=float), axis=1)
    out = {"budgets": {}, "threshold": {}}
    if random_final is not None:  # random search's mean best after its last trial
        out["trials_to_random_best"] = trials_to_reach(curves, random_final)
    for budget in budgets:
        if budget > curves.shape[1]:
            continue
        best = curves[:, budget - 1]
        entry = {"mean": float(best.mean()), "std": float(best.std(ddof=1)) if len(best) > 1 else 0.0,
                 "min": float(best.min()), "max": float(best.max()),
                 "p10": float(np.percentile(best, 10)), "p90": float(np.percentile(best, 90))}
        if random_best is not None and budget in random_best:
            entry["vs_random"] = {"difference": float(best.mean() - np.mean(random_best[budget])),
                                  "p_superior": superiority(best, random_best[budget])}
        out["budgets"][str(budget)] = entry
    seconds, trials = [], []
    for run, curve in zip(runs, curves):
        hit = np.nonzero(curve >= threshold)[0]
        if len(hit):
            cost = np.cumsum(np.array(run["train_seconds"], dtype=float) + np.array(run["proxy_seconds"]))
            seconds.append(float(cost[hit[0]]))
            trials.append(int(hit[0]) + 1)
    out["threshold"] = {"reached": len(seconds), "runs": len(runs),
                        "mean_seconds": float(np.mean(seconds)) if seconds else None,
                        "median_seconds": float(np.median(seconds)) if seconds else None,
                        "mean_trials": float(np.mean(trials)) if trials else None}
    out["distinct_rows"] = float(np.mean([len(set(r["keys"])) for r in runs]))
    out["mean_distance"] = float(np.mean([np.mean(r["distance"]) for r in runs]))
    out["found_optimum"] = int(sum(c[-1] >= optimum - 1e-12 for c in curves))
    out["propose_ms"] = float(np.median([r["propose_ms"] for r in runs]))
    out["scored_per_trial"] = float(np.mean([np.mean(r["scored"]) for r in runs]))
    return out


def correlations(objective: TabularObjective) -> dict:
    accuracy = objective.column("accuracy")
    out = {}
    rho, n = spearman(objective.column("accuracy_epoch1"), accuracy)
    out["accuracy_epoch1"] = {"rho": rho, "n": n}
    seeds = [row.get("accuracy_seeds") or [None, None] for row in objective.rows]
    first = np.array([_num(s[0]) for s in seeds])
    second = np.array([_num(s[1]) if len(s) > 1 else math.nan for s in seeds])
    rho, n = spearman(first, second)
    out["seed0_vs_seed1"] = {"rho": rho, "n": n}
    for column in PROXY_COLUMNS:
        rho, n = spearman(objective.column(column), accuracy)
        out[column] = {"rho": rho, "n": n}
    return out


def _num(value) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


def run_study(table, seeds: int = 20, trials: int = 100, oracles=ORACLES, workers: int = 1,
              budgets=BUDGETS, proxy: str = "synflow", prescreen_n: int = 10,
              bayesian_acquisition: str = "sampled", candidates: int = 1000, gp_restarts: int = 0,
              threshold_percentile: float = 90.0, work: str | None = None, verbose: int = 0) -> dict:
    """Run every oracle ``seeds`` times for ``trials`` trials against ``table`` (path or dict)
    and return the results (what ``study.json`` holds). With ``work``, finished searches are
    kept there and a rerun reads them back instead of searching again (:class:`RunCache`)."""
    for name in oracles:
        if name not in ORACLES:
            raise UserError(f"unknown oracle {name!r}: expected one of {', '.join(ORACLES)}")
    if bayesian_acquisition not in ("sampled", "stock"):
        raise UserError("bayesian acquisition must be 'sampled' or 'stock'")
    table = load_table(table)
    started = time.perf_counter()
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    _init_worker(table)
    objective = _OBJECTIVE
    settings = {"proxy": proxy, "prescreen_n": prescreen_n, "bayesian_acquisition": bayesian_acquisition,
                "candidates": candidates, "gp_restarts": gp_restarts}
    # Longest first so that two workers finish together.
    weight = {"bayesian": 0, "predictor+cost": 1, "predictor+thompson": 1, "evolution+reward": 1, "random+reward": 1,
              "evolution+prescreen": 1}
    cache = RunCache(work, table, trials, settings)
    jobs, runs = [], []
    for name in sorted(oracles, key=lambda n: weight.get(n, 2)):
        for seed in range(seeds):
            cached = cache.get(name, seed)
            if cached is None:
                jobs.append((name, seed, trials, settings))
            else:
                runs.append(cached)
    resumed = len(runs)
    if verbose and resumed:
        print(f"resuming: {resumed} finished searches read from {cache.folder}, {len(jobs)} to run", flush=True)

    def finished(run):
        cache.put(run)
        runs.append(run)
        if verbose:
            print(f"[{len(runs)}/{resumed + len(jobs)}] {run['oracle']} seed {run['seed']}", flush=True)

    if workers > 1 and jobs:
        import multiprocessing

        import keras_tuner  # noqa: F401  (imported once here: the forked workers inherit it)

        context = multiprocessing.get_context("fork")
        with context.Pool(workers, initializer=_init_worker, initargs=(table,)) as pool:
            for run in pool.imap_unordered(run_one, jobs, chunksize=1):
                finished(run)
    else:
        for job in jobs:
            finished(run_one(job))
    rewards = objective.rewards()
    optimum = objective.best()
    threshold = float(np.nanpercentile(rewards, threshold_percentile))
    results = {"oracles": {}, "order": list(oracles)}
    by_name = {name: sorted([r for r in runs if r["oracle"] == name], key=lambda r: r["seed"]) for name in oracles}
    random_best = random_final = None
    if "random" in by_name and all(r["available"] for r in by_name["random"]):
        curves = np.maximum.accumulate(np.array([r["rewards"] for r in by_name["random"]]), axis=1)
        random_best = {b: curves[:, b - 1] for b in budgets if b <= curves.shape[1]}
        random_final = float(curves[:, -1].mean())
    for name in oracles:
        group = by_name[name]
        missing = [r for r in group if not r["available"]]
        if missing:
            results["oracles"][name] = {"available": False, "reason": missing[0]["reason"]}
            continue
        summary = summarize(group, budgets, threshold, optimum["reward"], None if name == "random" else random_best,
                            random_final)
        results["oracles"][name] = {"available": True, "summary": summary,
                                    "runs": [{k: r[k] for k in ("seed", "rewards", "keys", "distance", "scored")}
                                             for r in group]}
    results.update({
        "table": {"rows": len(objective.rows), "complete": objective.meta.get("complete"),
                  "count": objective.meta.get("count"), "created": objective.meta.get("created"),
                  "space_size": objective.space.size, "reward": objective.reward.to_dict()},
        "optimum": {"reward": optimum["reward"], "accuracy": optimum.get("accuracy"), "macs": optimum.get("macs"),
                    "genotype": optimum.get("genotype")},
        "reward_percentiles": {str(p): float(np.nanpercentile(rewards, p)) for p in (50, 90, 99)},
        "threshold": {"percentile": threshold_percentile, "reward": threshold},
        "correlations": correlations(objective),
        "settings": dict(settings, seeds=seeds, trials=trials, workers=workers, budgets=list(budgets)),
        "wall_seconds": time.perf_counter() - started, "resumed_runs": resumed,
        "machine": dict(machine(), load_average_before=load_before),
    })
    return results


def machine() -> dict:
    model = ""
    try:
        with open("/proc/cpuinfo") as handle:
            model = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), "")
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"cpus": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "platform": platform.platform(), "load_average": load}


# -- reports -------------------------------------------------------------------------------------------
def markdown(results: dict) -> str:
    budgets = [b for b in results["settings"]["budgets"] if b <= results["settings"]["trials"]]
    opt = results["optimum"]["reward"]
    lines = [f"Table: {results['table']['rows']} architectures of a {results['table']['space_size']:,}-genotype "
             f"sub-space; optimum reward {opt:.4f}; {results['settings']['seeds']} seeds x "
             f"{results['settings']['trials']} trials per oracle; wall time {results['wall_seconds']:.1f} s"
             + (f" ({results['resumed_runs']} searches read back from an earlier, interrupted run)."
                if results.get("resumed_runs") else "."), "",
             "Best reward found after N trials: mean ± std over seeds, [10th, 90th percentile].", "",
             "| oracle | " + " | ".join(f"{b} trials" for b in budgets) + " | runs that found the optimum |",
             "|---|" + "---|" * (len(budgets) + 1)]
    for name in results["order"]:
        entry = results["oracles"][name]
        if not entry["available"]:
            lines.append(f"| {name} | " + " | ".join("unavailable" for _ in budgets) + f" | {entry['reason']} |")
            continue
        s = entry["summary"]
        cells = [f"{s['budgets'][str(b)]['mean']:.4f} ± {s['budgets'][str(b)]['std']:.4f} "
                 f"[{s['budgets'][str(b)]['p10']:.4f}, {s['budgets'][str(b)]['p90']:.4f}]" for b in budgets]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {s['found_optimum']}/{len(entry['runs'])} |")
    lines += ["", "Against random search: mean difference of the best reward, and the probability that a run "
              "of the oracle ends above a run of random search (0.5 = no better; ties count half).", "",
              "| oracle | " + " | ".join(f"{b} trials" for b in budgets) + " |", "|---|" + "---|" * len(budgets)]
    for name in results["order"]:
        entry = results["oracles"][name]
        if name == "random" or not entry["available"]:
            continue
        cells = []
        for b in budgets:
            vs = entry["summary"]["budgets"][str(b)].get("vs_random")
            cells.append(f"{vs['difference']:+.4f}, P {vs['p_superior']:.2f}" if vs else "n/a")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    finals = [e["summary"].get("trials_to_random_best") for e in results["oracles"].values() if e["available"]]
    if any(f is not None for f in finals):
        lines += ["", f"Trials until the seed-mean best reaches random search's {results['settings']['trials']}-trial "
                  "mean best (n/a: never within the budget):", "", "| oracle | trials |", "|---|---|"]
        for name in results["order"]:
            entry = results["oracles"][name]
            if entry["available"]:
                value = entry["summary"].get("trials_to_random_best")
                lines.append(f"| {name} | {'n/a' if value is None else value} |")
    threshold = results["threshold"]
    lines += ["", f"Simulated search cost to reach reward {threshold['reward']:.4f} (the table's "
              f"{threshold['percentile']:g}th percentile): summed one-training seconds of the trials run "
              "until the best-so-far reaches it (plus zero-cost scoring seconds of every prescreened "
              "candidate), mean over the runs that reached it.", "",
              "| oracle | runs that reached it | mean trials | mean seconds | median seconds | "
              f"distinct rows visited (of {results['settings']['trials']} trials) | mean lookup distance | "
              "median ms per proposal |",
              "|---|---|---|---|---|---|---|---|"]
    for name in results["order"]:
        entry = results["oracles"][name]
        if not entry["available"]:
            continue
        s = entry["summary"]
        t = s["threshold"]
        fmt = (lambda v, f: "n/a" if v is None else format(v, f))
        lines.append(f"| {name} | {t['reached']}/{t['runs']} | {fmt(t['mean_trials'], '.1f')} | "
                     f"{fmt(t['mean_seconds'], '.0f')} | {fmt(t['median_seconds'], '.0f')} | "
                     f"{s['distinct_rows']:.1f} | {s['mean_distance']:.2f} | {s['propose_ms']:.1f} |")
    lines += ["", "Spearman rank correlation with the table's accuracy (over the rows that have both):", "",
              "| score | rho | rows |", "|---|---|---|"]
    labels = {"accuracy_epoch1": "accuracy after 1 epoch (same runs)",
              "seed0_vs_seed1": "seed 0 accuracy vs seed 1 accuracy (noise ceiling)"}
    for column, value in results["correlations"].items():
        rho = "n/a" if value["rho"] is None or not math.isfinite(value["rho"]) else f"{value['rho']:+.3f}"
        lines.append(f"| {labels.get(column, column)} | {rho} | {value['n']} |")
    return "\n".join(lines) + "\n"


def plot(results: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for name in results["order"]:
        entry = results["oracles"][name]
        if not entry["available"]:
            continue
        curves = np.maximum.accumulate(np.array([r["rewards"] for r in entry["runs"]]), axis=1)
        x = np.arange(1, curves.shape[1] + 1)
        line, = ax.plot(x, curves.mean(axis=0), label=name, linewidth=1.6)
        ax.fill_between(x, np.percentile(curves, 10, axis=0), np.percentile(curves, 90, axis=0),
                        color=line.get_color(), alpha=0.12, linewidth=0)
    ax.axhline(results["optimum"]["reward"], color="black", linestyle=":", linewidth=1, label="table optimum")
    ax.axhline(results["threshold"]["reward"], color="gray", linestyle="--", linewidth=1,
               label=f"{results['threshold']['percentile']:g}th percentile")
    ax.set_xscale("log")
    ax.set_xlabel("trials")
    ax.set_ylabel("best reward so far")
    ax.set_title(f"Tabular search, mean and 10th-90th percentile of {results['settings']['seeds']} seeds")
    low = min(np.percentile(np.maximum.accumulate(np.array([r["rewards"] for r in e["runs"]]), axis=1)[:, 0], 10)
              for e in results["oracles"].values() if e["available"])
    ax.set_ylim(low, results["optimum"]["reward"] + 0.1 * (results["optimum"]["reward"] - low))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def _rounded(value):
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    return value


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", default=DEFAULT_TABLE)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    parser.add_argument("--plot", default=DEFAULT_PLOT)
    parser.add_argument("--work", help="where finished searches are kept for a resume (default OUT/work; '' keeps none)")
    parser.add_argument("--oracles", default=",".join(ORACLES))
    parser.add_argument("--proxy", default="synflow", help="zero-cost proxy column the prescreen ranks by")
    parser.add_argument("--prescreen-n", type=int, default=10)
    parser.add_argument("--bayesian-acquisition", choices=("sampled", "stock"), default="sampled")
    parser.add_argument("--candidates", type=int, default=1000,
                        help="points the sampled acquisition scores per proposal")
    parser.add_argument("--gp-restarts", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        if args.seeds < 1 or args.trials < 1 or args.workers < 1:
            raise UserError("--seeds, --trials and --workers must be positive")
        results = run_study(args.table, args.seeds, args.trials, tuple(args.oracles.split(",")), args.workers,
                            proxy=args.proxy, prescreen_n=args.prescreen_n,
                            bayesian_acquisition=args.bayesian_acquisition, candidates=args.candidates,
                            gp_restarts=args.gp_restarts,
                            work=os.path.join(args.out, "work") if args.work is None else args.work, verbose=1)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    results["command"] = " ".join(["benchmarks/tabular/study.py"] + list(sys.argv[1:] if argv is None else argv))
    os.makedirs(args.out, exist_ok=True)
    saved = json.loads(json.dumps(results))
    for entry in saved["oracles"].values():  # the raw curves: each run's per-trial rewards
        for run in entry.get("runs", []):
            for name in ("keys", "distance") + (() if any(run["scored"]) else ("scored",)):
                run.pop(name)
    write_text(os.path.join(args.out, "study.json"), json.dumps(_rounded(saved), separators=(",", ":")) + "\n")
    text = markdown(results)
    write_text(os.path.join(args.out, "study.md"), text)
    if args.plot:
        plot(results, args.plot)
    print(text)
    print(f"wall time {results['wall_seconds']:.1f} s; wrote {args.out}/study.json, study.md and {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
