"""Wall-clock cost to reach a reward: differentiable (one-shot) search against random search and
evolution with and without zero-cost prescreening, on the tabular benchmark's sub-space and recipe.

The table-driven oracles come from the search-quality study (``benchmarks/tabular/study.py``,
its ``study.json``): for each seed, the number of trials until the best reward so far reaches R
(the study's threshold, the table's 90th-percentile reward) and how many candidates the
prescreen scored on the way. Their cost is converted to seconds with the cost of one trial and of
one zero-cost score *measured in this run* (median over a few table architectures), so every
row of the table is timed on the same machine in the same state. The differentiable rows are
real ``run_search(oracle="differentiable")`` runs over the same sub-space with the table's
recipe (supernet, then the derived genotype retrained from scratch once, as one trial): their
wall time and the reward of the retrained genotype.

    python benchmarks/search_cost.py                       # 3 differentiable seeds; ~10 min on 2 cores
    python benchmarks/search_cost.py --seeds 1 --supernet-epochs 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TABLE = os.path.join(HERE, "tabular", "table.json")
STUDY = os.path.join(HERE, "tabular", "study.json")
TABLE_ORACLES = ("random", "evolution", "evolution+prescreen")


def trial_and_score_seconds(objective, recipe: dict, proxy: str, samples: int = 3) -> tuple[float, float]:
    """Median seconds of one from-scratch proxy training (build, trace, train) and of one
    zero-cost score, over the first ``samples`` architectures of the table."""
    from effscale.search import zero_cost
    from effscale.data.pipeline import DataSpec, load_data
    from effscale.model.genotype import Genotype
    from effscale.model.scaling import Variant
    from effscale.search.proxy import ProxySettings, proxy_train

    data = load_data(DataSpec("digits", resolution=recipe["resolution"], seed=0), batch_size=recipe["batch_size"])
    settings = ProxySettings(epochs=recipe["epochs"], batch_size=recipe["batch_size"],
                             learning_rate=recipe["learning_rate"], bn_momentum=recipe["bn_momentum"],
                             schedule="constant")  # the tabular table's recipe
    variant = Variant.explicit(recipe["width"], recipe["depth"], recipe["resolution"])
    batch = zero_cost.first_batch(data)
    trains, scores = [], []
    for row in objective.rows[:samples]:
        genotype = Genotype.parse(row["genotype"])
        started = time.perf_counter()
        proxy_train(genotype, variant, data, settings)
        trains.append(time.perf_counter() - started)
        started = time.perf_counter()
        zero_cost.score(genotype, proxy, batch, variant, data.num_classes)
        scores.append(time.perf_counter() - started)
    return statistics.median(trains), statistics.median(scores)


def trials_to_reach(rewards: list, threshold: float) -> int | None:
    best = float("-inf")
    for number, value in enumerate(rewards, start=1):
        best = max(best, value)
        if best >= threshold:
            return number
    return None


def table_rows(study: dict, trial_seconds: float, score_seconds: float) -> list[dict]:
    threshold = study["threshold"]["reward"]
    rows = []
    for name in TABLE_ORACLES:
        entry = study["oracles"].get(name) or {}
        if not entry.get("available"):
            continue
        trials, scored, final = [], [], []
        for run in entry["runs"]:
            reached = trials_to_reach(run["rewards"], threshold)
            final.append(max(run["rewards"]))
            if reached is not None:
                trials.append(reached)
                scored.append(sum((run.get("scored") or [0] * reached)[:reached]))
        seconds = [t * trial_seconds + s * score_seconds for t, s in zip(trials, scored)]
        rows.append({"method": name, "runs": len(entry["runs"]), "reached": len(trials),
                     "trials": statistics.mean(trials) if trials else None,
                     "seconds": statistics.median(seconds) if seconds else None,
                     "best_reward": statistics.mean(final), "budget": len(entry["runs"][0]["rewards"])})
    return rows


def differentiable_runs(objective, recipe: dict, seeds: int, supernet_epochs: int, arch_learning_rate: float,
                        threshold: float) -> list[dict]:
    from effscale.search.proxy import ProxySettings
    from effscale.search import run_search

    space, reward = objective.space, objective.reward
    settings = ProxySettings(epochs=recipe["epochs"], batch_size=recipe["batch_size"],
                             learning_rate=recipe["learning_rate"], bn_momentum=recipe["bn_momentum"], seed=0,
                             schedule="constant")
    runs = []
    for seed in range(seeds):
        with tempfile.TemporaryDirectory() as folder:
            started = time.perf_counter()
            result = run_search(space.reference, oracle="differentiable", cost=reward.cost, target=reward.target,
                                constraint=reward.constraint, trials=1, dataset="digits",
                                resolution=recipe["resolution"], width=recipe["width"], depth=recipe["depth"],
                                open_choices=space.open, options=space.options, stages=space.stages,
                                proxy=settings, seed=seed, project_dir=os.path.join(folder, "search"), verbose=0,
                                oracle_options={"supernet_epochs": supernet_epochs,
                                                "arch_learning_rate": arch_learning_rate})
            seconds = time.perf_counter() - started
        best = result.best
        try:
            recorded = objective.lookup(result.best_genotype, nearest=False)
        except Exception:  # noqa: BLE001 - NotInTable: most of the 3,456 genotypes are not sampled
            recorded = None
        runs.append({"seed": seed, "seconds": seconds, "reward": best["reward"], "accuracy": best["accuracy"],
                     "macs": best["macs"], "genotype": best["genotype"],
                     "table_reward": objective.evaluate(objective.space.to_values(result.best_genotype))["reward"]
                     if recorded else None, "reached": best["reward"] >= threshold})
        print(f"differentiable seed {seed}: {seconds:.0f} s, reward {best['reward']:.4f} "
              f"(accuracy {best['accuracy']:.4f}, {best['macs'] / 1e6:.2f}M MACs) {best['genotype']}", flush=True)
    return runs


def markdown(rows: list[dict], diff: list[dict], threshold: float, trial_seconds: float, score_seconds: float,
             proxy: str, supernet_epochs: int) -> str:
    lines = [f"Reward to reach R = {threshold:.4f} (the table's 90th percentile). One trial = "
             f"{trial_seconds:.1f} s, one {proxy} score = {score_seconds:.2f} s (medians measured in this run).", "",
             "| method | runs reaching R | mean trials to R | median seconds to R | mean best reward (budget) |",
             "|---|---|---|---|---|"]
    for row in rows:
        trials = "-" if row["trials"] is None else f"{row['trials']:.1f}"
        seconds = "-" if row["seconds"] is None else f"{row['seconds']:.0f}"
        lines.append(f"| {row['method']} | {row['reached']}/{row['runs']} | {trials} | {seconds} | "
                     f"{row['best_reward']:.4f} ({row['budget']} trials) |")
    if diff:
        reached = [d for d in diff if d["reached"]]
        seconds = statistics.median(d["seconds"] for d in diff)
        lines.append(f"| differentiable ({supernet_epochs} supernet epochs + 1 retraining) | {len(reached)}/{len(diff)} | "
                     f"1 (retrained) | {seconds:.0f} (whole run, reached or not) | "
                     f"{statistics.mean(d['reward'] for d in diff):.4f} (1 trial) |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", default=TABLE)
    parser.add_argument("--study", default=STUDY, help="study.json written by benchmarks/tabular/study.py")
    parser.add_argument("--seeds", type=int, default=3, help="differentiable searches to run")
    parser.add_argument("--supernet-epochs", type=int, default=5)
    parser.add_argument("--arch-learning-rate", type=float, default=0.05)
    parser.add_argument("--out", default=os.path.join(HERE, "search_cost.json"))
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from effscale.common.io import write_json
    from effscale.search.tabular import TabularObjective

    objective = TabularObjective(args.table)
    with open(args.study) as handle:
        study = json.load(handle)
    recipe = objective.meta["recipe"]
    proxy = study["settings"]["proxy"]
    trial_seconds, score_seconds = trial_and_score_seconds(objective, recipe, proxy)
    threshold = study["threshold"]["reward"]
    rows = table_rows(study, trial_seconds, score_seconds)
    diff = differentiable_runs(objective, recipe, args.seeds, args.supernet_epochs, args.arch_learning_rate,
                               threshold)
    text = markdown(rows, diff, threshold, trial_seconds, score_seconds, proxy, args.supernet_epochs)
    print(text)
    write_json(args.out, {"threshold": threshold, "trial_seconds": trial_seconds, "score_seconds": score_seconds,
                          "table_oracles": rows, "differentiable": diff, "supernet_epochs": args.supernet_epochs,
                          "arch_learning_rate": args.arch_learning_rate, "markdown": text})
    return 0


if __name__ == "__main__":
    sys.exit(main())
