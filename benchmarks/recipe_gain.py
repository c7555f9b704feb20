"""The final training recipe's gain: the same variant trained with named recipes, one run each.

Each run is (configuration, epochs, seed) and is named ``CONFIG-eEPOCHS-sSEED``. It trains with
``effscale.train_variant`` in ``WORK/NAME`` (checkpointed every epoch: a killed run resumes
there at its last finished epoch) and, when it finishes, its record (test top-1 on the official
test split, parameters, multiply-adds, wall and CPU seconds, the recipe, the per-epoch history)
is written atomically to ``OUT/NAME.json``; a rerun skips every run whose file exists.
``OUT/results.md`` is the table drawn from those files alone.

Configurations (:data:`CONFIGS`, fields of :class:`effscale.training.recipe.Recipe` over its
defaults, batch 64):

* ``plain``: the recipe members and baselines were trained with so far (``Recipe()``: RMSprop at
  0.016 per 256 images, one warm-up epoch, cosine decay, label smoothing 0.1, decoupled weight
  decay 1e-5, which at these learning rates shrinks nothing) and no augmentation;
* ``strong``: the same plus ``padded-crop`` augmentation (a random 28 px crop of the image
  reflect-padded by 3 pixels, and a horizontal flip: Fashion-MNIST's classes are mirror-safe)
  and decoupled weight decay 0.02;
* ``strong-ema``: ``strong`` with an exponential moving average of the weights (0.999);
* ``crop``: ``plain`` plus the ``padded-crop`` augmentation only (the plain recipe's weight
  decay), for the long schedules: ``strong`` underfit ``tiny`` at 14 epochs.

CPU seconds are this process's user + system time spent on the run (``resource.getrusage``),
carried over a resume by ``WORK/NAME/cpu.json``; wall seconds are ``train_variant``'s own (also
summed over resumes). The machine is shared, so wall time shows the load too.

    .venv/bin/python benchmarks/recipe_gain.py --configs strong --epochs 16         # Fashion-MNIST
    .venv/bin/python benchmarks/recipe_gain.py --configs plain,strong --epochs 4
    .venv/bin/python benchmarks/recipe_gain.py --smoke --work /tmp/rg/work --out /tmp/rg/out
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

CONFIGS = {
    "plain": {},
    "strong": {"augment": "padded-crop", "weight_decay": 0.02},
    # the strong recipe underfit tiny at 14 epochs (train accuracy 0.910 against plain's 0.971):
    # the crop and flip alone, at the plain recipe's weight decay, for long schedules
    "crop": {"augment": "padded-crop"},
    "strong-ema": {"augment": "padded-crop", "weight_decay": 0.02, "ema_decay": 0.999},
}

SETTINGS = {
    # Fashion-MNIST's official split: 57,000 training images, 3,000 held out for validation, the
    # 10,000 t10k images as the test split. tiny at w=1.1,d=1: 90,599 parameters, 1.64M multiply-adds.
    "full": {"dataset": "fashion_mnist", "genotype": "tiny", "variant": "w=1.1,d=1,r=28", "batch_size": 64,
             "validation_fraction": 0.05, "configs": "plain,strong", "epochs": "16", "seeds": "0",
             "work": os.path.join(ROOT, "..", "recipe_gain_work"), "out": os.path.join(HERE, "recipe_gain")},
    # the bundled digits, seconds per run: checks the harness, not the recipe
    "smoke": {"dataset": "digits", "genotype": "tiny", "variant": "w=0.25,d=0.25,r=16", "batch_size": 32,
              "validation_fraction": 0.2, "configs": "plain,strong", "epochs": "1", "seeds": "0",
              "work": None, "out": None},
}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_clock(path: str, before: float):
    """A Keras callback writing ``{epoch: CPU seconds so far}`` to ``path`` after every epoch
    (``before``: the seconds spent on the run before this process, read back on a resume)."""
    import keras

    from effscale.common.io import write_json

    class CpuClock(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.start = cpu_seconds()

        def on_epoch_end(self, epoch, logs=None):
            spent = read_cpu(path)
            spent[str(epoch + 1)] = round(before + cpu_seconds() - self.start, 2)
            write_json(path, spent)

    return CpuClock()


def read_cpu(path: str) -> dict:
    from effscale.common.io import read_json_cache

    return read_json_cache(path)


def run_names(configs, epochs, seeds) -> list[tuple[str, str, int, int]]:
    """``(name, config, epochs, seed)`` of every run, in order.

    >>> run_names(["plain", "strong"], [4], [0])
    [('plain-e4-s0', 'plain', 4, 0), ('strong-e4-s0', 'strong', 4, 0)]
    """
    return [(f"{c}-e{e}-s{s}", c, e, s) for e in epochs for s in seeds for c in configs]


def train_one(name: str, config: str, epochs: int, seed: int, settings: dict, work: str) -> dict:
    from effscale.training.checkpoint import read_state
    from effscale.data.spec import DataSpec
    from effscale.training.recipe import Recipe
    from effscale.training.train import train_variant

    run_dir = os.path.join(work, name)
    cpu_path = os.path.join(work, f"{name}.cpu.json")  # beside the run folder: train owns that one
    state = read_state(run_dir) if os.path.isdir(run_dir) else None
    done = state["epoch"] if state else 0
    before = float(read_cpu(cpu_path).get(str(done), 0.0)) if done else 0.0
    recipe = Recipe(epochs=epochs, batch_size=settings["batch_size"], batch_scope="global", seed=seed,
                    **CONFIGS[config])
    load = os.getloadavg()
    data = DataSpec(settings["dataset"], data_dir=settings.get("data_dir"),
                    validation_fraction=settings["validation_fraction"])
    record = train_variant(settings["genotype"], settings["variant"], data, recipe, "default", run_dir,
                           verbose=settings.get("verbose", 0), latency_runs=0, callbacks=[cpu_clock(cpu_path, before)])
    spent = read_cpu(cpu_path)
    return {
        "name": name, "config": config, "recipe_changes": CONFIGS[config], "epochs": epochs, "seed": seed,
        "genotype": settings["genotype"], "variant": settings["variant"], "dataset": settings["dataset"],
        "test_top1": record["test_top1"], "test_top5": record.get("test_top5"),
        "validation_top1": record.get("validation_top1"), "params": record["params"],
        "multiply_adds": record["multiply_adds"], "wall_seconds": record["wall_seconds"],
        "train_seconds": record["train_seconds"], "cpu_seconds": spent.get(str(epochs)),
        "resumed_from_epochs": record["resumed_from_epochs"], "recipe": record["recipe"],
        "data": {k: record["data"].get(k) for k in ("train_size", "validation_size", "test_size", "splits")},
        "history": [{k: round(v, 4) if isinstance(v, float) else v for k, v in epoch.items()}
                    for epoch in record["history"]],
        "machine": f"{platform.machine()} / {os.cpu_count()} CPUs", "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in load],
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def table(out: str) -> str:
    """The Markdown table of every finished run in ``out``."""
    import glob

    from effscale.common.io import read_json

    records = sorted((read_json(p) for p in glob.glob(os.path.join(out, "*-e*-s*.json"))),
                     key=lambda r: (r["epochs"], r["seed"], r["config"]))
    rows = ["| run | config | epochs | seed | test top-1 | params | multiply-adds | wall s | CPU s | finished |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        cpu = "" if r.get("cpu_seconds") is None else f"{r['cpu_seconds']:.0f}"
        rows.append(f"| {r['name']} | {r['config']} | {r['epochs']} | {r['seed']} | {r['test_top1']:.4f} | "
                    f"{r['params']:,} | {r['multiply_adds']:,} | {r['wall_seconds']:.0f} | {cpu} | {r['finished']} |")
    return "\n".join(rows) + "\n"


def parse_list(parser, text: str, kind, what: str) -> list:
    """``text`` split at commas into ``kind`` values; a bad list is argparse's one-line exit 2."""
    try:
        values = [kind(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values:
        parser.error(f"--{what} {text!r}: expected a comma-separated list")
    return values


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="recipe_gain.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="digits, seconds: checks the harness")
    parser.add_argument("--configs", help=f"comma-separated, of {', '.join(CONFIGS)}")
    parser.add_argument("--epochs", help="comma-separated schedules, e.g. 4,16")
    parser.add_argument("--seeds", help="comma-separated, e.g. 0,1")
    parser.add_argument("--variant")
    parser.add_argument("--data-dir", help="folder of the Fashion-MNIST IDX files (default: where installed)")
    parser.add_argument("--shard", default="0/1", help="I/N: every N-th run from the I-th")
    parser.add_argument("--work", help="run folders (checkpoints); kept between invocations")
    parser.add_argument("--out", help="result files, one per finished run (tracked)")
    parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=0)
    args = parser.parse_args(argv)
    settings = dict(SETTINGS["smoke" if args.smoke else "full"])
    for key in ("variant", "work", "out"):
        if getattr(args, key):
            settings[key] = getattr(args, key)
    if not settings["work"] or not settings["out"]:
        parser.error("--smoke needs --work and --out")
    settings["data_dir"], settings["verbose"] = args.data_dir, args.verbose
    configs = parse_list(parser, args.configs or settings["configs"], str, "configs")
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        parser.error(f"unknown config {unknown[0]!r}: expected one of {', '.join(CONFIGS)}")
    epochs = parse_list(parser, args.epochs or settings["epochs"], int, "epochs")
    seeds = parse_list(parser, args.seeds or settings["seeds"], int, "seeds")
    try:
        index, count = (int(x) for x in args.shard.split("/"))
        assert 0 <= index < count
    except (ValueError, AssertionError):
        parser.error(f"--shard {args.shard!r}: expected I/N with 0 <= I < N")
    if any(e < 1 for e in epochs) or any(s < 0 for s in seeds):
        parser.error("--epochs must be positive and --seeds non-negative")

    from effscale.common.io import write_json, write_text

    os.makedirs(settings["out"], exist_ok=True)
    os.makedirs(settings["work"], exist_ok=True)
    for i, (name, config, epoch_count, seed) in enumerate(run_names(configs, epochs, seeds)):
        if i % count != index:
            continue
        path = os.path.join(settings["out"], f"{name}.json")
        if os.path.exists(path):
            print(f"{name}: done before, skipped", flush=True)
            continue
        print(f"{name}: training ({time.strftime('%H:%M UTC', time.gmtime())})", flush=True)
        record = train_one(name, config, epoch_count, seed, settings, settings["work"])
        write_json(path, record)
        write_text(os.path.join(settings["out"], "results.md"), table(settings["out"]))
        print(f"{name}: test top-1 {record['test_top1']:.4f}, {record['params']:,} parameters, "
              f"{record['wall_seconds']:.0f} s wall, {record['cpu_seconds']} CPU s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
