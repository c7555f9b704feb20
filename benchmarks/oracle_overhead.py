"""Oracle overhead: how long each oracle takes to propose a trial once 1,000 trials have finished.

For each oracle a history of ``--history`` finished trials is filled first (candidates scored by
the tabular benchmark, ``benchmarks/tabular/table.json``, state files not written), then state
files are switched on (a fresh project dir, ``--dir``) and the next ``--proposals`` trials are
timed, split into:

* ``populate``: the oracle's own search logic (``populate_space``);
* ``create``: the whole ``create_trial`` (``populate`` plus Keras Tuner's bookkeeping: copying
  the hyperparameters, recording the values, writing ``trial.json`` and ``oracle.json``);
* ``end``: ``update_trial`` + ``end_trial`` (scoring, the oracle's update, the state writes).

Filling the history with each oracle's own proposals would take BayesianOptimization hours (a
GP fit per proposal), so the Bayesian and predictor oracles fill it with their random initial
points (``num_initial_points`` / ``initial_points`` raised to the history size, then restored); the prescreened rows fill it
without prescreening. The timed proposals are all the oracles' real ones.

    .venv/bin/python benchmarks/oracle_overhead.py [--history 1000] [--proposals 20]
        [--slow-proposals 3] [--table benchmarks/tabular/table.json] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "tabular"))

import study  # noqa: E402  (benchmarks/tabular/study.py: its oracle builders and BLAS settings)

import numpy as np  # noqa: E402

from effscale.common.errors import UserError  # noqa: E402
from effscale.common.io import write_json  # noqa: E402
from effscale.search import _keras_tuner as internals  # noqa: E402
from effscale.search.tabular import TabularObjective, run_oracle  # noqa: E402

ORACLES = ("random", "bayesian", "bayesian-sampled", "evolution", "reinforce", "predictor", "predictor+cost",
           "evolution+prescreen", "evolution+reward")
SLOW = ("bayesian",)  # timed over --slow-proposals only


def build(name: str, objective: TabularObjective, max_trials: int, seed: int, prescreen_n: int, proxy: str):
    from effscale.search import make_oracle

    hp = objective.space.hyperparameters()
    if name == "evolution+prescreen":
        # The scores only steer which candidate is proposed; any column times the same.
        if not np.isfinite(objective.column(proxy)).any():
            proxy = "params"
        score = study.proxy_scorer(objective, proxy)
        try:
            return make_oracle("evolution", max_trials=max_trials, hyperparameters=hp, seed=seed,
                               prescreen=(lambda candidates: score(candidates)[0], prescreen_n))
        except (TypeError, UserError) as error:
            raise UserError(f"make_oracle does not accept prescreen: {error}") from None
    oracle, _ = study.build_oracle(name, objective, max_trials, seed, {
        "proxy": proxy, "prescreen_n": prescreen_n, "bayesian_acquisition": "stock", "candidates": 1000,
        "gp_restarts": 0})
    internals.write_state_files(oracle)  # undoes build_oracle's in-memory switch; measure() decides
    return oracle


def measure(name: str, objective: TabularObjective, history: int, proposals: int, directory: str,
            seed: int = 0, prescreen_n: int = 10, proxy: str = "synflow") -> dict:
    """Fill ``history`` finished trials, then time ``proposals`` more (see the module docstring)."""
    oracle = build(name, objective, history + proposals, seed, prescreen_n, proxy)
    study.in_memory(oracle)
    initial = getattr(oracle, "num_initial_points", None)
    if name.startswith("bayesian"):
        oracle.num_initial_points = history
    if name.startswith("predictor"):
        initial, oracle.initial_points = oracle.initial_points, history
    prescreen_kind = name.endswith(("+prescreen", "+reward"))
    screen = getattr(oracle, "prescreen", None)
    if prescreen_kind:
        if screen is None:
            raise UserError("make_oracle ignored prescreen (the oracle has no prescreen)")
        oracle.prescreen = None
    started = time.perf_counter()
    filled = run_oracle(oracle, objective, history)
    fill_seconds = time.perf_counter() - started
    if name.startswith("bayesian"):
        oracle.num_initial_points = initial
    if name.startswith("predictor"):
        oracle.initial_points = initial
    if prescreen_kind:
        oracle.prescreen = screen
    # State files on, in a fresh project dir, as a real search writes them.
    internals.write_state_files(oracle, directory, f"overhead-{name}")
    populate = []
    inner = oracle.populate_space

    def timed(trial_id):
        begin = time.perf_counter()
        try:
            return inner(trial_id)
        finally:
            populate.append(time.perf_counter() - begin)

    oracle.populate_space = timed
    records = run_oracle(oracle, objective, proposals)
    state = os.path.join(directory, f"overhead-{name}", "oracle.json")
    ms = lambda values: 1e3 * float(np.median(values))  # noqa: E731
    return {"oracle": name, "history": len(filled), "proposals": len(records), "fill_seconds": fill_seconds,
            "populate_ms": ms(populate), "create_ms": ms([r["create_seconds"] for r in records]),
            "end_ms": ms([r["end_seconds"] for r in records]),
            "state_kib": os.path.getsize(state) / 1024 if os.path.exists(state) else None}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", default=study.DEFAULT_TABLE)
    parser.add_argument("--history", type=int, default=1000)
    parser.add_argument("--proposals", type=int, default=20)
    parser.add_argument("--slow-proposals", type=int, default=3, help="proposals timed for the stock Bayesian")
    parser.add_argument("--oracles", default=",".join(ORACLES))
    parser.add_argument("--dir", default=None, help="where the timed trials write their state (default: a temp dir)")
    parser.add_argument("--out", default=None, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", module="sklearn")
    try:
        objective = TabularObjective(args.table)
        if args.history >= objective.space.size:
            raise UserError(f"--history {args.history} must be below the space's {objective.space.size} genotypes")
        directory = args.dir or tempfile.mkdtemp(prefix="effscale-overhead-")
        rows = []
        for name in args.oracles.split(","):
            if name not in ORACLES:
                raise UserError(f"unknown oracle {name!r}: expected one of {', '.join(ORACLES)}")
            count = args.slow_proposals if name in SLOW else args.proposals
            try:
                with study.one_blas_thread():
                    rows.append(measure(name, objective, args.history, count, directory))
            except UserError as error:
                rows.append({"oracle": name, "unavailable": str(error)})
            print(rows[-1], file=sys.stderr, flush=True)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    lines = [f"Median milliseconds per trial with {args.history} finished trials in the history "
             f"({objective.space.size:,}-genotype space, state files on {directory}):", "",
             "| oracle | proposals timed | populate_space | create_trial (proposal + bookkeeping) | "
             "update + end_trial | oracle.json KiB |", "|---|---|---|---|---|---|"]
    for row in rows:
        if "unavailable" in row:
            lines.append(f"| {row['oracle']} | unavailable: {row['unavailable']} | | | | |")
            continue
        lines.append(f"| {row['oracle']} | {row['proposals']} | {row['populate_ms']:.1f} | {row['create_ms']:.1f} | "
                     f"{row['end_ms']:.1f} | {row['state_kib']:.0f} |")
    print("\n".join(lines))
    if args.out:
        write_json(args.out, {"rows": rows, "history": args.history, "machine": study.machine(),
                              "command": " ".join(["benchmarks/oracle_overhead.py"] + list(sys.argv[1:]))})
    return 0


if __name__ == "__main__":
    sys.exit(main())
