"""The search space's spread: how far apart the fully trained architectures of a random sample
of the wide space (``effscale.search.space.WIDE``) lie, against the old sub-space's.

The old space's numbers are the Fashion-MNIST table's own (``benchmarks/tabular/fashion_mnist/
table.json``: 30 architectures of ``tiny``'s stages 2-4 with block, kernel {3, 5}, expand, SE,
repeats and filters 0.75-1.25x open, fully trained by its ``meta.full_recipe``: 2 epochs on half
the training split, SGD 0.05 momentum 0.9, cosine, batch 64, 28 px). Here ``--count``
architectures are drawn uniformly from ``SearchSpace("tiny", **WIDE)`` (every choice open, the
reference first), keeping only those at or under the old sample's largest multiply-adds (the
same cost ceiling), and each is trained by the same recipe with its first seed; the old sample
is read at its first seed too, so both ranges are of single-seed accuracies.

Every finished architecture is written atomically to ``OUT/aNN.json`` and a rerun skips it (a
kill loses only the architecture in training); ``OUT/results.md`` is drawn from those files.

    .venv/bin/python benchmarks/space_spread.py                      # Fashion-MNIST, 16 architectures
    .venv/bin/python benchmarks/space_spread.py --shard 1/2          # a second process beside it
    .venv/bin/python benchmarks/space_spread.py --smoke --out DIR    # digits, seconds: the harness
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from effscale.search.space import WIDE, SearchSpace

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "tabular"))
sys.path.insert(0, os.path.dirname(HERE))

TABLE = os.path.join(HERE, "tabular", "fashion_mnist", "table.json")
SMOKE_RECIPE = {"batch_size": 32, "bn_momentum": 0.9, "dataset": "digits", "depth": 1.0, "epochs": 1,
                "learning_rate": 0.05, "momentum": 0.9, "optimizer": "sgd", "resolution": 8, "schedule": "cosine",
                "seeds": [0], "train_fraction": 0.5, "width": 0.25}


def old_sample(table_path: str = TABLE) -> dict:
    """The old space's fully trained architectures, at their first seed: test and validation
    accuracy, multiply-adds (at the table's cost variant) and parameters."""
    with open(table_path) as handle:
        table = json.load(handle)
    rows = table["rows"] if isinstance(table["rows"], list) else list(table["rows"].values())
    full = [r for r in rows if "full" in r]
    return {"recipe": table["meta"]["full_recipe"], "cost_variant": table["meta"]["cost_variant"],
            "rows": [{"key": r["key"], "test": r["full"]["test_accuracy_seeds"][0],
                      "validation": r["full"]["accuracy_seeds"][0], "macs": r["macs"], "params": r["params"]}
                     for r in full]}


def sample_wide(count: int, max_macs: float, cost_variant: str, seed: int = 0) -> list:
    """``count`` distinct genotypes of the wide space, the reference first, each at or under
    ``max_macs`` at ``cost_variant`` (uniform draws, the ones over the ceiling redrawn).

    >>> genotypes = sample_wide(3, 5e6, "w=1,d=1,r=32")
    >>> genotypes[0].key == SearchSpace("tiny", **WIDE).reference.key, len({g.key for g in genotypes})
    (True, 3)
    """
    import numpy as np

    from effscale.model.cost import cost

    space = SearchSpace("tiny", **WIDE)
    rng = np.random.default_rng(seed)
    chosen, keys = [space.reference], {space.reference.key}
    for _ in range(100_000):
        if len(chosen) >= count:
            break
        genotype = space.to_genotype(space.random_values(rng))
        if genotype.key not in keys and cost(genotype, cost_variant, classes=10).multiply_adds <= max_macs:
            keys.add(genotype.key)
            chosen.append(genotype)
    return chosen


def spread(values: list) -> dict:
    """Range, min, max, standard deviation.

    >>> spread([0.8, 0.9, 0.85])["range"]
    0.1
    """
    import numpy as np

    return {"min": round(float(min(values)), 4), "max": round(float(max(values)), 4),
            "range": round(float(max(values) - min(values)), 4), "std": round(float(np.std(values)), 4),
            "count": len(values)}


def write_results(out: str, old: dict) -> dict:
    """``OUT/results.md`` and the summary from the finished ``OUT/aNN.json`` files."""
    from effscale.common.io import write_text

    rows = []
    for name in sorted(os.listdir(out)):
        if name.startswith("a") and name.endswith(".json"):
            with open(os.path.join(out, name)) as handle:
                rows.append(json.load(handle))
    summary = {"old": {split: spread([r[split] for r in old["rows"]]) for split in ("test", "validation")},
               "wide": {split: spread([r[split] for r in rows]) for split in ("test", "validation")} if rows else {}}
    if rows:
        summary["ratio"] = {split: round(summary["wide"][split]["range"] / summary["old"][split]["range"], 2)
                            for split in ("test", "validation")}
    lines = ["| space | architectures | test top-1 min | max | range | std | validation range |",
             "|---|---|---|---|---|---|---|"]
    for name, label in (("old", "old sub-space (the Fashion-MNIST table)"), ("wide", "wide (WIDE)")):
        if summary.get(name):
            t, v = summary[name]["test"], summary[name]["validation"]
            lines.append(f"| {label} | {t['count']} | {t['min']:.4f} | {t['max']:.4f} | {t['range']:.4f} | "
                         f"{t['std']:.4f} | {v['range']:.4f} |")
    if "ratio" in summary:
        lines.append(f"\nRange ratio wide / old: test {summary['ratio']['test']:.2f}x, "
                     f"validation {summary['ratio']['validation']:.2f}x (goal >= 3x).")
    lines += ["", "| architecture | multiply-adds | params | test top-1 | validation | train s | genotype |",
              "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['macs']:,} | {r['params']:,} | {r['test']:.4f} | {r['validation']:.4f} | "
                     f"{r['train_seconds']:.0f} | `{r['genotype']}` |")
    write_text(os.path.join(out, "results.md"), "\n".join(lines) + "\n")
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=16, help="wide-space architectures, the reference included")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")
    parser.add_argument("--shard", default="0/1", help="I/N: train every N-th architecture from the I-th")
    parser.add_argument("--out", default=os.path.join(HERE, "space_spread"), help="the results folder (tracked)")
    parser.add_argument("--smoke", action="store_true", help="digits, 2 architectures at 8 px, seconds")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from effscale.common.io import write_json
    from generate import load_table_data, release_models, train_seeds

    index, _, total = args.shard.partition("/")
    index, total = int(index), int(total)
    old = old_sample()
    recipe = dict(old["recipe"], seeds=old["recipe"]["seeds"][:1])
    count = args.count
    if args.smoke:
        if args.out == parser.get_default("out"):
            parser.error("--smoke writes its results where --out says, not into the tracked folder")
        recipe, count = SMOKE_RECIPE, 2
    max_macs = max(r["macs"] for r in old["rows"])
    genotypes = sample_wide(count, max_macs, old["cost_variant"], args.seed)
    os.makedirs(args.out, exist_ok=True)
    data = None
    from effscale.model.cost import cost

    for number, genotype in enumerate(genotypes):
        path = os.path.join(args.out, f"a{number:02d}.json")
        if number % total != index or os.path.exists(path):
            continue
        data = data or load_table_data(recipe)
        started = time.monotonic()
        trained = train_seeds(genotype, data, recipe, test=True)
        release_models()
        analytic = cost(genotype, old["cost_variant"], classes=10)
        write_json(path, {"name": f"a{number:02d}", "genotype": genotype.encode(), "key": genotype.key,
                          "test": trained["test_accuracy_seeds"][0], "validation": trained["accuracy_seeds"][0],
                          "macs": int(analytic.multiply_adds), "params": int(analytic.parameters),
                          "train_seconds": trained["train_seconds"], "recipe": recipe,
                          "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())})
        print(f"a{number:02d} test {trained['test_accuracy_seeds'][0]:.4f} macs {int(analytic.multiply_adds):,} "
              f"({time.monotonic() - started:.0f} s)", flush=True)
    summary = write_results(args.out, old)
    print(json.dumps(summary))
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
