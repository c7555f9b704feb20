"""Where a search trial's time goes, and how many trials an hour a search runs, old path against new.

    python benchmarks/trial_cost.py                      # split: both proxies, old and new interleaved
    python benchmarks/trial_cost.py --parallel           # also: 2 worker processes (1 thread) vs 1 process
    python benchmarks/trial_cost.py --search --demo      # also: whole `effscale search` / `effscale demo`
    python benchmarks/trial_cost.py --smoke              # seconds, in-process, digits (the test runs it)

**Split.** Each (round, proxy, path) runs in a fresh process (``EFFSCALE_TRIAL_PATH=old`` or
``new``; ``effscale.search.proxy.trial_path``), in interleaved order (old, new, old, new, ...) so
that on a shared machine both paths see the same load. A process imports effscale, builds the
search's :class:`~effscale.search.trial.TrialRunner` exactly as ``effscale search`` does
(``SearchConfig.resolve``), and runs the same seeded sample of candidates through
``TrialRunner.run``; the runner's ``timings`` give each trial's phases: ``build`` (the Keras
model), ``compile`` (compile and, new path, the optimizer and metric variables), ``first_step``
(tracing and the first batch), ``steps`` (the other training batches: the training itself),
``evaluation`` (the validation pass, its tracing included), ``fit_other`` (the rest of ``fit``),
``records`` (the stored training record) and ``other`` (genotype, analytic costs, the
reshuffle of a second seed: the trial's wall time minus the phases, so the phases add up to it).
Per process: ``start`` (process start and imports) and ``data`` (loading, once per process).

**Proxies.** ``fashion_mnist``: the Fashion-MNIST proxy of the tables and the headline (``tiny``,
28 px, 1 epoch on a class-balanced 10% of the training split, cosine SGD, batch 64, validation
on the 12,000 held-out images); ``digits``: the demo's proxy (``tiny`` at width 0.5, 16 px,
2 epochs on digits).

**Parallel** (``--parallel``): the same trials in two worker processes at the same time, each with
one TensorFlow thread (``TF_NUM_INTRAOP_THREADS=1``), against one process with TensorFlow's
default threads, interleaved: what ``effscale search --workers 2`` does on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

PROXIES = {
    "fashion_mnist": {"baseline": "tiny", "dataset": "fashion_mnist", "resolution": 28, "train_fraction": 0.1,
                      "epochs": 1},
    "digits": {"baseline": "tiny", "dataset": "digits", "resolution": 16, "width": 0.5, "epochs": 2},
    # --smoke: a micro network at 8 px, so the harness runs in seconds
    "smoke": {"baseline": "stem8_head32_res16_relu-mb_r1_k3_s2_e2_c8-mb_r1_k3_s2_e2_c16", "dataset": "digits",
              "resolution": 8, "epochs": 1, "open_choices": ("kernel",)},
}
PHASES = ("build", "compile", "first_step", "steps", "evaluation", "fit_other", "records", "other")
SEARCH_ARGS = {"fashion_mnist": ["--baseline", "tiny", "--dataset", "fashion_mnist", "--resolution", "28",
                                 "--train-fraction", "0.1", "--epochs", "1"],
               "digits": ["--baseline", "tiny", "--dataset", "digits", "--resolution", "16", "--width", "0.5",
                          "--epochs", "2"]}


def measure(proxy: str, trials: int, first: int = 0, seed: int = 0, spawned: float | None = None) -> dict:
    """Run candidates ``first`` .. ``first + trials - 1`` of the seeded sample of ``proxy``'s
    space in this process and return the split (seconds). ``spawned``: the wall clock when the
    process was started (its start and imports are then measured too).

    >>> result = measure("smoke", 1)
    >>> result["path"] in ("old", "new"), len(result["trials"])
    (True, 1)
    >>> trial = result["trials"][0]
    >>> abs(sum(trial["phases"].values()) - trial["wall"]) < 1e-6
    True
    """
    imported = time.time()
    import numpy as np

    from effscale.search import SearchConfig
    from effscale.search.assembly import assemble
    from effscale.search.proxy import trial_path

    imported = time.time() if spawned is not None else imported
    import tensorflow as tf

    tf.random.set_seed(None)  # as in a fresh process: the data's shuffle order depends on the global seed
    config = SearchConfig(**PROXIES[proxy], seed=seed)
    with tempfile.TemporaryDirectory() as folder:
        parts = assemble(config, folder, heartbeat_s=1.0)  # the search's own runner
        runner, resolved = parts.runner, parts.resolved
        runner.timings = {}
        started = time.perf_counter()
        runner.data  # noqa: B018 - loaded once per process, as a search does on its first trial
        data = time.perf_counter() - started
        rng = np.random.default_rng(seed)
        values = [resolved.space.random_values(rng) for _ in range(first + trials)][first:]
        out = []
        for value in values:
            runner.timings.clear()
            started, cpu = time.perf_counter(), time.process_time()
            metrics = runner.run(value)
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu
            phases = {k: runner.timings.get(k, 0.0) for k in PHASES if k != "other"}
            phases["other"] = wall - sum(phases.values())
            out.append({"wall": wall, "cpu": cpu, "phases": phases, "accuracy": metrics["accuracy"],
                        "genotype": resolved.space.to_genotype(value).encode()})
    return {"proxy": proxy, "path": trial_path(), "start": (imported - spawned) if spawned else None,
            "data": data, "trials": out, "pid": os.getpid(), "process_cpu": time.process_time()}


def _child(proxy: str, trials: int, path: str, first: int = 0, threads: int | None = None) -> subprocess.Popen:
    env = dict(os.environ, EFFSCALE_TRIAL_PATH=path, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=os.path.dirname(HERE))
    if threads:
        env.update(TF_NUM_INTRAOP_THREADS=str(threads), TF_NUM_INTEROP_THREADS=str(threads), OMP_NUM_THREADS="1")
    command = [sys.executable, os.path.abspath(__file__), "--child", proxy, "--trials", str(trials),
               "--first", str(first), "--spawned", repr(time.time())]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def _collect(processes: list) -> list[dict]:
    results = []
    for process in processes:
        out, _ = process.communicate()
        if process.returncode:
            raise SystemExit(f"trial_cost: a measuring process failed (exit {process.returncode})")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def run_split(proxies, trials: int, rounds: int, in_process: bool = False) -> list[dict]:
    """Every (round, proxy, path), old and new alternating; one fresh process each (or this one)."""
    runs = []
    for index in range(rounds):
        for proxy in proxies:
            for path in (("old", "new") if index % 2 == 0 else ("new", "old")):
                started = time.time()
                if in_process:
                    os.environ["EFFSCALE_TRIAL_PATH"] = path
                    result = measure(proxy, trials)
                else:
                    result = _collect([_child(proxy, trials, path)])[0]
                result.update(round=index, process_wall=time.time() - started)
                runs.append(result)
                print(f"  {proxy} {path} round {index}: {len(result['trials'])} trials, process "
                      f"{result['process_wall']:.1f} s", flush=True)
    return runs


def run_parallel(proxy: str, trials: int, rounds: int, path: str = "new", workers: int = 2) -> list[dict]:
    """``trials`` candidates by one process (default threads) and by ``workers`` one-thread
    processes at once (each a share of the same candidates), alternating."""
    runs = []
    for index in range(rounds):
        for mode in (("one", "workers") if index % 2 == 0 else ("workers", "one")):
            started = time.time()
            if mode == "one":
                results = _collect([_child(proxy, trials, path)])
            else:
                share = [trials // workers + (1 if w < trials % workers else 0) for w in range(workers)]
                firsts = [sum(share[:w]) for w in range(workers)]
                results = _collect([_child(proxy, n, path, f, threads=1) for n, f in zip(share, firsts)])
            wall = time.time() - started
            runs.append({"proxy": proxy, "mode": mode, "round": index, "wall": wall,
                         "trials": sum(len(r["trials"]) for r in results), "processes": results})
            print(f"  parallel {proxy} {mode} round {index}: {wall:.1f} s", flush=True)
    return runs


def run_command(name: str, proxy: str | None, trials: int, rounds: int, workers: int = 0) -> list[dict]:
    """Whole commands, old and new alternating: ``effscale search`` (``trials`` random trials on
    ``proxy``; with ``workers`` also the new path with ``--workers WORKERS``) or ``effscale demo``."""
    runs = []
    modes = ["old", "new"] + ([f"new+workers{workers}"] if workers > 1 and name == "search" else [])
    for index in range(rounds):
        for mode in modes[index % len(modes):] + modes[:index % len(modes)]:
            path = mode.split("+")[0]
            with tempfile.TemporaryDirectory() as folder:
                if name == "search":
                    args = ["search", *SEARCH_ARGS[proxy], "--oracle", "random", "--trials", str(trials),
                            "--project-dir", os.path.join(folder, "p"), "--quiet"]
                    args += ["--workers", str(workers)] if "+workers" in mode else []
                else:
                    args = ["demo", "--out", os.path.join(folder, "demo"), "--quiet"]
                env = dict(os.environ, EFFSCALE_TRIAL_PATH=path, PYTHONPATH=os.path.dirname(HERE))
                started = time.time()
                done = subprocess.run([sys.executable, "-m", "effscale.cli", *args], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                wall = time.time() - started
            if done.returncode:
                raise SystemExit(f"trial_cost: `effscale {' '.join(args)}` failed (exit {done.returncode})")
            runs.append({"command": name, "proxy": proxy, "path": path, "mode": mode, "round": index, "wall": wall,
                         "trials": trials if name == "search" else None})
            print(f"  {name} {proxy or ''} {mode} round {index}: {wall:.1f} s", flush=True)
    return runs


def _median(values):
    values = sorted(values)
    n = len(values)
    return (values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2) if n else float("nan")


def summarize(split: list[dict]) -> dict:
    """Per proxy and path: mean seconds of each phase per trial, the trial's wall, the training
    share, and trials per hour (steady: trial walls only; per process: its whole wall)."""
    table = {}
    for run in split:
        entry = table.setdefault(run["proxy"], {}).setdefault(run["path"], {"trials": [], "processes": []})
        entry["trials"].extend(run["trials"])
        entry["processes"].append(run)
    summary = {}
    for proxy, paths in table.items():
        for path, entry in paths.items():
            trials = entry["trials"]
            wall = sum(t["wall"] for t in trials) / len(trials)
            phases = {k: sum(t["phases"][k] for t in trials) / len(trials) for k in PHASES}
            processes = entry["processes"]
            summary.setdefault(proxy, {})[path] = {
                "trials_measured": len(trials), "trial_wall_mean": wall,
                "trial_wall_median": _median([t["wall"] for t in trials]), "phases": phases,
                "trial_cpu_mean": sum(t.get("cpu", 0.0) for t in trials) / len(trials),
                "training_share": phases["steps"] / wall, "non_training_share": 1 - phases["steps"] / wall,
                "start": _median([p["start"] for p in processes if p["start"] is not None]) if any(
                    p["start"] is not None for p in processes) else None,
                "data": _median([p["data"] for p in processes]),
                "trials_per_hour_steady": 3600 / wall,
                "trials_per_hour_process": 3600 * len(trials) / sum(p["process_wall"] for p in processes),
                "accuracies": [t["accuracy"] for t in trials]}
        if {"old", "new"} <= set(summary[proxy]):
            old, new = summary[proxy]["old"], summary[proxy]["new"]
            summary[proxy]["speedup_steady"] = old["trial_wall_mean"] / new["trial_wall_mean"]
            summary[proxy]["speedup_process"] = new["trials_per_hour_process"] / old["trials_per_hour_process"]
            if new["trial_cpu_mean"] > 0:
                summary[proxy]["cpu_ratio"] = old["trial_cpu_mean"] / new["trial_cpu_mean"]
    return summary


def markdown(summary: dict) -> str:
    lines = ["| proxy | path | trial wall (mean) | CPU | " + " | ".join(PHASES) + " | training share "
             "| trials/h (steady) | trials/h (process) |", "|" + "---|" * (len(PHASES) + 7)]
    for proxy, paths in summary.items():
        for path in ("old", "new"):
            if path not in paths:
                continue
            s = paths[path]
            lines.append(f"| {proxy} | {path} | {s['trial_wall_mean']:.2f} s | {s['trial_cpu_mean']:.2f} s | "
                         + " | ".join(f"{s['phases'][k]:.2f}" for k in PHASES)
                         + f" | {100 * s['training_share']:.0f}% | {s['trials_per_hour_steady']:.0f} "
                           f"| {s['trials_per_hour_process']:.0f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proxies", default="fashion_mnist,digits")
    parser.add_argument("--trials", type=int, default=4, help="trials per measuring process")
    parser.add_argument("--rounds", type=int, default=2, help="old/new pairs per proxy")
    parser.add_argument("--parallel", action="store_true", help="also 2 one-thread workers vs 1 process")
    parser.add_argument("--search", action="store_true", help="also whole `effscale search` runs, old vs new")
    parser.add_argument("--demo", action="store_true", help="also whole `effscale demo` runs, old vs new")
    parser.add_argument("--workers", type=int, default=0,
                        help="--search: also the new path with `effscale search --workers N`")
    parser.add_argument("--no-split", action="store_true", help="skip the split")
    parser.add_argument("--smoke", action="store_true", help="digits micro proxy, 1 trial, in this process")
    parser.add_argument("--out", default=os.path.join(HERE, "trial_cost.json"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--spawned", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child, args.trials, args.first, spawned=args.spawned)), flush=True)
        return 0
    import platform

    started = time.time()
    result = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": platform.machine(),
              "cpus": os.cpu_count(), "load_before": os.getloadavg(), "argv": sys.argv[1:] if argv is None else argv}
    if args.smoke:
        split = run_split(["smoke"], 1, 1, in_process=True)
        os.environ.pop("EFFSCALE_TRIAL_PATH", None)
        result.update(split=split, summary=summarize(split))
    elif not args.no_split:
        split = run_split(args.proxies.split(","), args.trials, args.rounds)
        result.update(split=split, summary=summarize(split))
    if args.parallel and not args.smoke:
        result["parallel"] = run_parallel(args.proxies.split(",")[0], args.trials, args.rounds)
    if args.search and not args.smoke:
        result["search"] = [r for p in args.proxies.split(",")
                            for r in run_command("search", p, args.trials, args.rounds, args.workers)]
    if args.demo and not args.smoke:
        result["demo"] = run_command("demo", None, 0, args.rounds)
    result["wall"] = time.time() - started
    result["load_after"] = os.getloadavg()
    from effscale.common.io import write_json

    write_json(args.out, result)
    if "summary" in result:
        print(markdown(result["summary"]))
    print(f"wrote {args.out} ({result['wall']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
