"""The proxy-fidelity check (``effscale proxy``): does a cheap proxy task rank architectures
the way full training does, and better than seed noise?

In the spirit of Vertex AI NAS's proxy-task design: N architectures of the search space (the
reference always among them) are each trained at a "full" setting and at a grid of cheaper
proxy settings, every one with ``seeds`` seeds. Per setting the check reports the measured
seconds per trial, the Spearman rank correlation of the seed-mean accuracies with full
training, the seed-to-seed Spearman (seed 0 against seed 1: the noise ceiling of any
correlation at that setting), and the spread of accuracy across architectures against the
seed noise. It recommends the cheapest setting whose Spearman with full training reaches
``threshold`` and writes it as a proxy file (:func:`effscale.search.proxy.read_proxy_file`) that
``effscale search --proxy FILE`` and the family config's ``search.proxy`` accept.

A setting is written ``epochs=2,fraction=0.5,resolution=16,width=0.5,schedule=cosine`` (every
key optional): epochs of training, the class-balanced fraction of the training split, the
input resolution (0: the baseline's own, at most 64), the width multiplier and the learning
rate schedule (``constant``, or ``cosine`` to zero over the run with keras ``CosineDecay``).

The trainings are the cost: each finished one is written atomically to
``DIR/trainings/SETTING/aNN-sS.json``, and rerunning the same command resumes. Written:
``DIR/proxy_check.json`` (configuration, architectures, per-setting results, recommendation),
``DIR/proxy_check.md`` (the table), ``DIR/proxy_vs_full.png`` and, when a setting qualifies,
``DIR/proxy.json``.

>>> ProxyTask.parse("epochs=2,fraction=0.5,schedule=cosine").name
'e2-f0.5-r0-w1-cosine'
>>> ProxyTask.parse("epocs=2")
Traceback (most recent call last):
...
effscale.common.errors.UserError: proxy setting 'epocs=2': unknown key 'epocs' (expected epochs, fraction, resolution, width, schedule, augment)
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import asdict, dataclass, replace

import numpy as np

from effscale.common.errors import UserError
from effscale.common.io import plain_json, read_json, write_json
from effscale.common.migrations import current, write_state
from effscale.search.proxy import ProxySettings
from effscale.common.stats import spearman
# The setting's form lives in proxy_task.py; importable from here as before.
from effscale.search.proxy_task import (AUGMENTATIONS, DEFAULT_FULL, DEFAULT_GRID, LADDER_SPEARMAN,  # noqa: F401
                                        ProxyTask, task_dict)


def sample_architectures(space, n: int, seed: int) -> list[str]:
    """``n`` distinct genotype strings of ``space``: the reference first, then seeded random draws.

    >>> from effscale.search.space import SearchSpace
    >>> archs = sample_architectures(SearchSpace("tiny"), 4, seed=0)
    >>> len(set(archs)), archs[0] == SearchSpace("tiny").reference.encode()
    (4, True)
    """
    rng = np.random.default_rng(seed)
    chosen = [space.reference.encode()]
    for _ in range(1000 * n):
        if len(chosen) >= n:
            break
        genotype = space.to_genotype(space.random_values(rng)).encode()
        if genotype not in chosen:
            chosen.append(genotype)
    if len(chosen) < n:
        raise UserError(f"the search space holds fewer than {n} distinct architectures")
    return chosen


# -- statistics of one setting ----------------------------------------------------------------------
def setting_statistics(accuracy: np.ndarray, full_mean: np.ndarray | None, seconds: list[float]) -> dict:
    """``accuracy``: (architectures, seeds), NaN where not trained yet. Architectures missing
    a seed are left out of everything."""
    complete = np.all(np.isfinite(accuracy), axis=1)
    if full_mean is not None:
        complete &= np.isfinite(full_mean)
    acc = accuracy[complete]
    stats = {"architectures": int(complete.sum()), "seconds_per_trial": float(np.mean(seconds)) if seconds else None,
             "timed_trainings": len(seconds), "spearman_full": None, "seed_spearman": None, "spread": None,
             "seed_noise": None, "accuracy_min": None, "accuracy_max": None}
    if len(acc) == 0:
        return stats
    mean = acc.mean(axis=1)
    stats.update(accuracy_min=float(mean.min()), accuracy_max=float(mean.max()),
                 spread=float(mean.std(ddof=1)) if len(mean) > 1 else None)
    if acc.shape[1] >= 2:
        rho, _ = spearman(acc[:, 0], acc[:, 1])
        stats["seed_spearman"] = None if math.isnan(rho) else rho
        # The standard deviation of one seed's accuracy, from the seed 0 / seed 1 differences.
        stats["seed_noise"] = float(np.sqrt(np.mean((acc[:, 0] - acc[:, 1]) ** 2) / 2))
    if full_mean is not None:
        rho, _ = spearman(mean, full_mean[complete])
        stats["spearman_full"] = None if math.isnan(rho) else rho
    return stats


def recommend(results: dict, threshold: float) -> tuple[str | None, str]:
    """(the cheapest qualifying setting's name or None, a sentence saying why)."""
    qualifying = [(r["seconds_per_trial"], name) for name, r in results.items()
                  if not r["full"] and r["spearman_full"] is not None and r["spearman_full"] >= threshold
                  and r["seconds_per_trial"] is not None]
    if qualifying:
        seconds, name = min(qualifying)
        r = results[name]
        return name, (f"recommended: {name} (Spearman {r['spearman_full']:.2f} with full training, "
                      f"seed-to-seed {_fmt(r['seed_spearman'])}, {seconds:.1f} s per trial)")
    scored = [(r["spearman_full"], name) for name, r in results.items()
              if not r["full"] and r["spearman_full"] is not None]
    best = f" (best: {max(scored)[1]} at {max(scored)[0]:.2f})" if scored else ""
    full = next((r for r in results.values() if r["full"]), {})
    ceiling = full.get("seed_spearman")
    hint = ("full training itself ranks the architectures differently from seed to seed "
            f"(seed-to-seed Spearman {_fmt(ceiling)}), so no proxy can agree with it: train longer or on more data at "
            "full, widen the space or use a harder task" if ceiling is not None and ceiling < threshold else
            "try more seeds per trial (effscale search --seeds), more training data (fraction), more epochs, "
            "or the cosine schedule")
    return None, f"no proxy setting reaches Spearman {threshold:g} with full training{best}: {hint}"


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.2f}"


# -- the check ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProxyCheck:
    """What a proxy check compares (validated when it runs, before anything is written).

    ``architectures`` of the space over ``baseline`` (its ``open_choices`` opened, as a search
    opens them) are trained at ``full`` and at every one of ``settings``, ``seeds`` seeds each,
    on ``dataset``; ``seed`` picks the architectures and the splits; ``batch_size`` and
    ``learning_rate`` are every training's; ``threshold`` is the Spearman a setting needs to be
    recommended.

    >>> ProxyCheck("tiny", architectures=4).seeds
    2
    """

    baseline: object = "tiny"
    dataset: str = "digits"
    architectures: int = 12
    seeds: int = 2
    full: "str | ProxyTask" = DEFAULT_FULL
    settings: tuple = tuple(DEFAULT_GRID)
    threshold: float = 0.7
    seed: int = 0
    batch_size: int = 64
    learning_rate: float = 0.05
    open_choices: tuple | None = None


def run_proxy_check(check: ProxyCheck | None = None, project_dir: str = "effscale-proxy", *, verbose: int = 1,
                    stream=None, shard: str | None = None) -> dict:
    """Run (or resume) ``check`` (default ``ProxyCheck()``) in ``project_dir`` and return what
    ``DIR/proxy_check.json`` holds.

    ``shard`` ``"I/N"`` trains only architectures I, I + N, I + 2N, ... so N processes can share
    the work on one project dir (each writes the summary of what is finished when it ends).
    Example (minutes of training, so not a doctest; tests/test_fidelity.py runs it through the CLI)::

        run_proxy_check(ProxyCheck("tiny", architectures=4, settings=["epochs=1"]), "runs/proxy")
    """
    check = check or ProxyCheck()
    baseline, dataset, architectures, seeds = check.baseline, check.dataset, check.architectures, check.seeds
    full, settings, threshold, seed = check.full, check.settings, check.threshold, check.seed
    batch_size, learning_rate, open_choices = check.batch_size, check.learning_rate, check.open_choices
    from effscale.model.zoo import load_genotype
    from effscale.search.config import SearchConfig
    from effscale.search.run import check_project_dir

    stream = stream or sys.stdout
    genotype = load_genotype(baseline)
    if not (isinstance(architectures, int) and architectures >= 3):
        raise UserError(f"architectures must be an integer >= 3 (a rank correlation needs 3), got {architectures!r}")
    if not (isinstance(seeds, int) and 2 <= seeds <= 20):
        raise UserError(f"seeds must be an integer in 2..20 (seed-to-seed needs 2), got {seeds!r}")
    shard_index, shard_count = _parse_shard(shard)
    if not 0 < threshold <= 1:
        raise UserError(f"threshold must be in (0, 1], got {threshold!r}")
    full_task = (full if isinstance(full, ProxyTask) else ProxyTask.parse(full)).resolved(genotype.resolution)
    grid = [(s if isinstance(s, ProxyTask) else ProxyTask.parse(s)).resolved(genotype.resolution) for s in settings]
    if not grid:
        raise UserError("give at least one proxy setting")
    if any(t.augment for t in grid):
        raise UserError("augment is for the full setting only: search trials train without augmentation")
    names = [t.name for t in grid]
    if len(set(names)) != len(names) or full_task.name in names:
        raise UserError("proxy settings must differ from each other and from the full setting")
    base = ProxySettings(batch_size=batch_size, learning_rate=learning_rate, seed=seed)
    # The space as a search over the same baseline and open choices builds it (SearchConfig).
    space = SearchConfig(genotype, open_choices=list(open_choices) if open_choices else None,
                         dataset=str(dataset)).space
    archs = sample_architectures(space, architectures, seed)
    config = {"baseline": genotype.encode(), "dataset": str(dataset), "architectures": archs, "seeds": seeds,
              "seed": seed, "full": task_dict(full_task), "base": _recipe(base.to_dict()), "space": space.to_dict()}
    path = check_project_dir(project_dir)
    summary_path = os.path.join(path, "proxy_check.json")
    if os.path.exists(summary_path):
        try:
            saved = read_json(summary_path)
        except ValueError:
            raise UserError(f"{summary_path} does not parse; use a new project dir") from None
        saved = current(saved, summary_path, "proxy check").get("config", {})
        for key in sorted(config):
            mine, theirs = (config[key], saved.get(key)) if key != "base" else (config[key], _recipe(saved.get(key)))
            if plain_json(theirs) != plain_json(mine):
                raise UserError(f"project dir {project_dir!r} holds a different proxy check ({key} differs); "
                                "use a new project dir")
    elif os.path.isdir(path) and os.listdir(path):
        raise UserError(f"project dir {project_dir!r} is not empty and is not an effscale proxy check")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    trainer = _Trainer(str(dataset), base)
    trainer.data(full_task, 0)  # a missing or bad dataset fails here, before anything is written

    # -- from here on the project dir is written -------------------------------------------------
    os.makedirs(os.path.join(path, "trainings"), exist_ok=True)
    tasks = [("full", full_task)] + [(t.name, t) for t in grid]
    jobs = [(a, name, task, s) for a in range(len(archs)) if a % shard_count == shard_index
            for name, task in tasks for s in range(seeds)]
    kept = sum(1 for a, name, _, s in jobs if _load_training(path, name, a, s, archs[a]) is not None)
    say = (lambda text: print(text, file=stream, flush=True)) if verbose else (lambda text: None)
    if kept:
        say(f"resuming {path}: {kept} finished training(s) kept")
    write_state(summary_path, {"config": config})
    started, done = time.monotonic(), 0
    for index, (a, name, task, s) in enumerate(jobs):
        if _load_training(path, name, a, s, archs[a]) is not None:
            continue
        record = trainer.train(archs[a], task, s)
        folder = os.path.join(path, "trainings", name)
        os.makedirs(folder, exist_ok=True)
        write_json(os.path.join(folder, f"a{a:02d}-s{s}.json"), record)
        done += 1
        left = len(jobs) - kept - done
        eta = (time.monotonic() - started) / done * left
        say(f"[{index + 1}/{len(jobs)}] {name} architecture {a} seed {s}: accuracy {record['accuracy']:.4f} "
            f"({record['seconds']:.1f} s; about {eta / 60:.0f} min left)")
    summary = summarize(path, config, tasks, threshold)
    say(format_table(summary))
    say(summary["message"])
    return summary


def _recipe(base) -> dict:
    """The shared training settings of a check: epochs and schedule belong to each setting."""
    return {k: v for k, v in (base or {}).items() if k not in ("epochs", "schedule")}


def _parse_shard(text) -> tuple[int, int]:
    """``"I/N"`` -> (I, N); None -> (0, 1).

    >>> _parse_shard("1/2"), _parse_shard(None)
    ((1, 2), (0, 1))
    """
    if text is None:
        return 0, 1
    from effscale.common.checks import COUNT_MAX, parse_int, shorten

    index, sep, count = str(text).partition("/")
    try:
        index, count = parse_int(index, "I", 0, COUNT_MAX), parse_int(count, "N", 1, COUNT_MAX)
        ok = sep and index < count
    except UserError:
        ok = False
    if not ok:
        raise UserError(f"shard {shorten(text)}: expected I/N with 0 <= I < N, e.g. 0/2")
    return index, count


def _load_training(path: str, name: str, arch: int, seed: int, genotype: str) -> dict | None:
    file = os.path.join(path, "trainings", name, f"a{arch:02d}-s{seed}.json")
    try:
        record = read_json(file)
    except (OSError, ValueError):
        return None
    if record.get("genotype") != genotype or not isinstance(record.get("accuracy"), (int, float)):
        return None
    return record


class _Trainer:
    """Trains one architecture at one setting and seed. Data splits are loaded once per
    (resolution, fraction) and kept; the held-out split is the same for every seed, and a seed
    changes the initial weights and the order of the training data (a reshuffle of the
    cached training split)."""

    def __init__(self, dataset: str, base: ProxySettings):
        self.dataset, self.base, self._data = dataset, base, {}
        self.reuse: dict = {}  # the compiled model of the last training: the next seed reuses its traced step

    def data(self, task: ProxyTask, seed: int):
        from effscale.search.proxy import reshuffled

        key = (task.resolution, task.train_fraction, task.augment)
        if key not in self._data:
            from effscale.data.pipeline import DataSpec, held_out_batch, load_data
            from effscale.search.proxy import trial_path

            spec = DataSpec(self.dataset, resolution=task.resolution, seed=self.base.seed,
                            train_fraction=task.train_fraction)
            self._data[key] = load_data(spec, batch_size=self.base.batch_size, augment=task.augment or False,
                                        validation_batch_size=held_out_batch(self.base.batch_size),
                                        in_memory=trial_path() == "new" and not task.augment)
        return reshuffled(self._data[key], self.base.seed * 1000 + seed)

    def train(self, genotype: str, task: ProxyTask, seed: int) -> dict:
        from effscale.model.genotype import Genotype
        from effscale.model.scaling import Variant
        from effscale.search.proxy import ProxyFailure, proxy_train

        data = self.data(task, seed)
        settings = replace(self.base, epochs=task.epochs, schedule=task.schedule, seed=self.base.seed + seed)
        started = time.monotonic()
        try:
            out = proxy_train(Genotype.parse(genotype), Variant.explicit(task.width, 1.0, task.resolution), data, settings,
                              reuse=self.reuse)
            accuracy, reason = out["accuracy"], ""
        except ProxyFailure as error:  # a diverged run counts as chance accuracy, and says so
            accuracy, reason = 1.0 / data.num_classes, str(error)
        return {"genotype": genotype, "setting": task_dict(task), "seed": seed, "accuracy": float(accuracy),
                "seconds": time.monotonic() - started, "train_size": data.train_size,
                "validation_size": data.validation_size, "failure": reason}


def summarize(path: str, config: dict, tasks, threshold: float) -> dict:
    """Read every finished training and write the summary, table, plot and proxy file."""
    from effscale.search.proxy import write_proxy_file

    archs, seeds = config["architectures"], config["seeds"]
    accuracy, seconds = {}, {}
    for name, _ in tasks:
        accuracy[name] = np.full((len(archs), seeds), np.nan)
        seconds[name] = []
        for a in range(len(archs)):
            times = []
            for s in range(seeds):
                record = _load_training(path, name, a, s, archs[a])
                if record is not None:
                    accuracy[name][a, s] = record["accuracy"]
                    times.append(record["seconds"])
            if len(times) == seeds:  # the slowest seed traced the step from scratch, as one search trial does
                seconds[name].append(max(times))
    full_mean = accuracy["full"].mean(axis=1)
    results = {}
    for name, task in tasks:
        results[name] = {"full": name == "full", "setting": task_dict(task),
                         **setting_statistics(accuracy[name], None if name == "full" else full_mean, seconds[name]),
                         "accuracy": [[None if math.isnan(v) else float(v) for v in row] for row in accuracy[name]]}
    chosen, message = recommend(results, threshold)
    complete = min(r["architectures"] for r in results.values())
    if complete < len(archs):
        message += (f" (over the {complete} of {len(archs)} architectures trained at every setting so far; "
                    "rerun the same command to finish)")
    summary = {"config": config, "threshold": threshold, "results": results, "recommended": chosen,
               "message": message, "ladder": ladder(results)}
    if summary["ladder"]:
        rungs = summary["ladder"]
        summary["message"] += (f" Rung ladder for a multi-fidelity search (asha) at this data fraction: from "
                               f"{rungs['min_epochs']} epoch(s) ({rungs['setting']}, Spearman "
                               f"{rungs['spearman_full']:.2f}) to {rungs['max_epochs']} (search.oracle_options: "
                               f"min_epochs {rungs['min_epochs']}, max_epochs {rungs['max_epochs']}).")
    proxy_path = os.path.join(path, "proxy.json")
    if chosen:
        task = ProxyTask(**results[chosen]["setting"])
        settings = ProxySettings.from_dict({**config["base"], "epochs": task.epochs, "schedule": task.schedule})
        evidence = {k: results[chosen][k] for k in ("spearman_full", "seed_spearman", "seconds_per_trial",
                                                     "architectures")}
        write_proxy_file(proxy_path, settings, resolution=task.resolution, width=task.width,
                         train_fraction=task.train_fraction, dataset=config["dataset"],
                         evidence={"setting": chosen, "check": path, **evidence})
        summary["proxy_file"] = proxy_path
    elif os.path.exists(proxy_path):
        os.unlink(proxy_path)  # an earlier, smaller check's recommendation no longer holds
    write_state(os.path.join(path, "proxy_check.json"), summary)
    from effscale.common.io import write_text

    write_text(os.path.join(path, "proxy_check.md"), format_table(summary) + "\n\n" + message + "\n")
    plot(summary, os.path.join(path, "proxy_vs_full.png"))
    return summary


def ladder(results: dict, threshold: float = LADDER_SPEARMAN) -> dict | None:
    """The rung ladder a multi-fidelity search derives from a check: among the settings that differ
    from the full one only in epochs and schedule (same data fraction, resolution and width), the
    fewest epochs whose Spearman against the full setting is at least ``threshold`` become the
    cheapest rung (``min_epochs``), the full setting's epochs the top one. None when none qualifies.

    >>> full = {"full": True, "setting": task_dict(ProxyTask(epochs=15, augment="padded-crop")), "spearman_full": None}
    >>> cheap = lambda e, rho: {"full": False, "setting": task_dict(ProxyTask(epochs=e)), "spearman_full": rho}
    >>> ladder({"full": full, "a": cheap(1, 0.3), "b": cheap(3, 0.62), "c": cheap(5, 0.8)})
    {'min_epochs': 3, 'max_epochs': 15, 'setting': 'b', 'spearman_full': 0.62}
    """
    top = next(r for r in results.values() if r["full"])["setting"]
    same = ("train_fraction", "resolution", "width")
    fitting = [(r["setting"]["epochs"], name, r["spearman_full"]) for name, r in results.items()
               if not r["full"] and r["spearman_full"] is not None and r["spearman_full"] >= threshold
               and all(r["setting"][k] == top[k] for k in same)]
    if not fitting:
        return None
    epochs, name, rho = min(fitting)
    return {"min_epochs": epochs, "max_epochs": top["epochs"], "setting": name, "spearman_full": rho}


def format_table(summary: dict) -> str:
    """The per-setting results as a markdown table."""
    lines = ["| setting | s / trial | Spearman vs full | seed-to-seed | accuracy | spread | seed noise | archs |",
             "|---|---:|---:|---:|---|---:|---:|---:|"]
    for name, r in summary["results"].items():
        label = f"full: {ProxyTask(**r['setting']).name}" if r["full"] else name
        accuracy = "-" if r["accuracy_min"] is None else f"{r['accuracy_min']:.3f}-{r['accuracy_max']:.3f}"
        spread = "-" if r["spread"] is None else f"{r['spread']:.4f}"
        noise = "-" if r["seed_noise"] is None else f"{r['seed_noise']:.4f}"
        secs = "-" if r["seconds_per_trial"] is None else f"{r['seconds_per_trial']:.1f}"
        lines.append(f"| {label} | {secs} | {'(reference)' if r['full'] else _fmt(r['spearman_full'])} | "
                     f"{_fmt(r['seed_spearman'])} | {accuracy} | {spread} | {noise} | {r['architectures']} |")
    return "\n".join(lines)


def plot(summary: dict, path: str) -> None:
    """Proxy against full accuracy (seed means), one panel per proxy setting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from effscale.common.io import atomic_path

    full = np.array([[np.nan if v is None else v for v in row] for row in summary["results"]["full"]["accuracy"]])
    proxies = [(n, r) for n, r in summary["results"].items() if not r["full"]]
    columns = min(3, len(proxies))
    rows = math.ceil(len(proxies) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3.6 * rows), squeeze=False)
    for axis, (name, r) in zip(axes.flat, proxies):
        acc = np.array([[np.nan if v is None else v for v in row] for row in r["accuracy"]])
        axis.scatter(full.mean(axis=1), acc.mean(axis=1), s=18)
        axis.set_title(f"{name}\nSpearman {_fmt(r['spearman_full'])}, seed-to-seed {_fmt(r['seed_spearman'])}",
                       fontsize=8)
        axis.set_xlabel("full accuracy (seed mean)", fontsize=8)
        axis.set_ylabel("proxy accuracy (seed mean)", fontsize=8)
        axis.tick_params(labelsize=7)
    for axis in list(axes.flat)[len(proxies):]:
        axis.set_visible(False)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=110, format="png")
    plt.close(figure)
