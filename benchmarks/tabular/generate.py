"""Generate a tabular benchmark: proxy-train a seeded sample of effscale's own search space and
record each architecture's accuracy and costs (the table ``effscale.search.tabular``'s
``TabularObjective`` reads, so an oracle can run a 100-trial search in seconds).

Two presets (``PRESETS``; ``--preset``):

- ``digits`` (the default; ``table.json`` beside this script): 200 of 3,456 genotypes, the ``tiny``
  baseline with stages 2-4 open at kernel {3, 5}, expand ratio {3, 6}, squeeze-excite {0, 0.25} and
  stage 3 one block fewer or not; 4 epochs at 16 px on the bundled digits, constant learning rate.
  Its proxy accuracy is mostly seed noise (docs/benchmarks.md): the noise case.
- ``fashion_mnist`` (``fashion_mnist/table.json``): 300 of 10.1M genotypes, ``tiny``'s stages 2-4 with
  block type, kernel, expand ratio, squeeze-excite, repeats and filters open at effscale's default
  options; trained at the setting ``effscale proxy`` recommends on Fashion-MNIST (1 epoch, 10% of
  the training split, 28 px, cosine), and the first 30 also fully trained (``--full``: 2 epochs on
  half the training split, validation and test accuracy), so ``meta.statistics`` holds the table's
  own seed-to-seed and proxy-vs-full Spearman, accuracy spread and seed noise. Fashion-MNIST is read
  from the IDX files of the Debian package ``dataset-fashion-mnist``.

The reference is always the first architecture; the others are distinct uniform samples (numpy
seed ``--seed``). Every architecture trains once per seed (SGD 0.05, momentum 0.9, batch 64, BN
momentum 0.9: the search's own proxy recipe); the table keeps the mean validation accuracy and the
seeds' accuracies, multiply-adds / parameters at the design resolution, LiteRT latency on one
thread and the wall time of one from-scratch proxy training (build, trace, train: what one search
trial costs). TensorFlow runs on one thread so shards can run side by side.

Work is resumable: every finished architecture is appended to ``WORK/rows-SHARD.jsonl`` at once,
a rerun skips what is there or already in the table, and the table is rewritten atomically from all
shards after every architecture, with ``meta.complete`` false until every sampled architecture is in.
``--proxies`` scores the trained architectures with the zero-cost proxies (``effscale.search.zero_cost``:
synflow, grad_norm, naswot on the first validation batch, untrained weights of seed 0) into
``WORK/proxies-SHARD.jsonl``; ``--full`` logs to ``WORK/full-SHARD.jsonl`` (``--shard`` splits both);
every write merges them in.

    python benchmarks/tabular/generate.py                         # the digits table (~1.5 h CPU)
    python benchmarks/tabular/generate.py --preset fashion_mnist --shard 0/2 &
    python benchmarks/tabular/generate.py --preset fashion_mnist --shard 1/2
    python benchmarks/tabular/generate.py --preset fashion_mnist --full --shard 0/2   # and 1/2
    python benchmarks/tabular/generate.py --preset fashion_mnist --proxies
    python benchmarks/tabular/generate.py --limit 5 --epochs 1 --seeds 0 --out /tmp/t.json --work /tmp/w
"""

from __future__ import annotations

import argparse
import datetime
import glob
import json
import os
import platform
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PROXY_COLUMNS = ("synflow", "grad_norm", "naswot")
# One entry per table. "recipe" is what every architecture is proxy-trained with (digits keeps the
# keys of the committed table so it resumes); "full", where present, is the longer training that the
# first "count" architectures also get, so the table carries its own proxy-vs-full correlation.
PRESETS = {
    "digits": {
        "space": {"reference": "tiny", "open": ("kernel", "expand", "se", "repeats"),
                  "options": {"kernel": (3, 5), "expand": (3, 6), "se": (0.0, 0.25), "repeats": (-1, 0)},
                  "stages": (2, 3, 4)},
        "count": 200, "out": os.path.join(HERE, "table.json"), "work": os.path.join(HERE, "work"),
        "recipe": {"dataset": "digits", "resolution": 16, "width": 1.0, "depth": 1.0, "epochs": 4,
                   "batch_size": 64, "optimizer": "sgd", "learning_rate": 0.05, "momentum": 0.9,
                   "bn_momentum": 0.9, "seeds": [0, 1]},
    },
    # tiny's stages 2-4 with block type, kernel, expand ratio, squeeze-excite, repeats and filters
    # open at effscale's default options (10.1M genotypes); the recipe is the setting `effscale proxy`
    # recommends on Fashion-MNIST (docs/benchmarks.md: 1 epoch, 10% of the training split, 28 px,
    # cosine); "full" is 2 epochs on half the training split, scored on validation and test.
    "fashion_mnist": {
        "space": {"reference": "tiny", "open": ("block", "kernel", "expand", "se", "repeats", "filters"),
                  "options": {}, "stages": (2, 3, 4)},
        "count": 300, "out": os.path.join(HERE, "fashion_mnist", "table.json"),
        "work": os.path.join(HERE, "fashion_mnist", "work"),
        "recipe": {"dataset": "fashion_mnist", "resolution": 28, "width": 1.0, "depth": 1.0, "epochs": 1,
                   "batch_size": 64, "optimizer": "sgd", "learning_rate": 0.05, "momentum": 0.9,
                   "bn_momentum": 0.9, "seeds": [0, 1], "schedule": "cosine", "train_fraction": 0.1},
        "full": {"count": 30, "epochs": 2, "train_fraction": 0.5, "schedule": "cosine", "seeds": [0, 1]},
    },
}


def subspace(preset: str = "digits"):
    from effscale.search.space import SearchSpace

    spec = PRESETS[preset]["space"]
    return SearchSpace(spec["reference"], open=spec["open"], options=spec["options"], stages=spec["stages"])


def sample(space, count: int, seed: int) -> list:
    """``count`` distinct genotypes: the reference first, then uniform samples."""
    import numpy as np

    rng = np.random.default_rng(seed)
    chosen, keys = [space.reference], {space.reference.key}
    while len(chosen) < min(count, space.size):
        genotype = space.to_genotype(space.random_values(rng))
        if genotype.key not in keys:
            keys.add(genotype.key)
            chosen.append(genotype)
    return chosen


def _variant(recipe: dict) -> str:
    return f"w={recipe['width']:g},d={recipe['depth']:g},r={recipe['resolution']}"


def train_seeds(genotype, data, recipe: dict, test: bool = False) -> dict:
    """Train ``genotype`` once per seed; later seeds reuse the traced step (fresh weights and
    optimizer state), so only the first run pays for tracing, as one search trial would. A
    recipe with a ``schedule`` (the Fashion-MNIST one) gives later seeds another order of the
    training split too, as ``effscale search --seeds`` does; ``test`` adds the test accuracy."""
    import keras
    import numpy as np

    from effscale.model.builder import ModelOptions, build
    from effscale.search.proxy import ProxySettings, reshuffled, steps_per_epoch

    schedule = recipe.get("schedule", "constant")
    settings = ProxySettings(epochs=recipe["epochs"], batch_size=recipe["batch_size"], optimizer=recipe["optimizer"],
                             learning_rate=recipe["learning_rate"], momentum=recipe["momentum"],
                             bn_momentum=recipe["bn_momentum"], schedule=schedule)
    finals, firsts, tests, model, train_seconds = [], [], [], None, None
    for index, seed in enumerate(recipe["seeds"]):
        started = time.perf_counter()
        keras.utils.set_random_seed(seed)
        fresh = build(genotype, _variant(recipe), classes=data.num_classes,
                      options=ModelOptions(bn_momentum=settings.bn_momentum))
        if model is None:
            model = fresh
            model.compile(settings.make_optimizer(steps_per_epoch(data), settings.epochs),
                          "sparse_categorical_crossentropy", metrics=["accuracy"], jit_compile=False)
        else:
            model.set_weights(fresh.get_weights())
            for variable in model.optimizer.variables:
                if "learning_rate" not in variable.path:
                    variable.assign(np.zeros(variable.shape, variable.dtype))
        train = data if "schedule" not in recipe or index == 0 else reshuffled(data, seed)
        history = model.fit(train.train, validation_data=data.validation, epochs=settings.epochs, verbose=0,
                            shuffle=False).history
        if train_seconds is None:
            train_seconds = time.perf_counter() - started
        accuracies = history["val_accuracy"]
        if not all(np.isfinite(history["loss"])):
            raise RuntimeError(f"{genotype.key}: NaN loss with seed {seed}")
        finals.append(float(accuracies[-1]))
        firsts.append(float(accuracies[0]))
        if test:
            tests.append(float(model.evaluate(data.test, verbose=0, return_dict=True)["accuracy"]))
    out = {"accuracy": float(np.mean(finals)), "accuracy_seeds": finals, "train_seconds": round(train_seconds, 3)}
    if settings.epochs > 1 or "schedule" not in recipe:  # what a 1-epoch proxy of the same runs measured
        out["accuracy_epoch1"] = float(np.mean(firsts))
    if test:
        out.update(test_accuracy=float(np.mean(tests)), test_accuracy_seeds=tests)
    return out


def release_models() -> None:
    """Drop the finished architecture's graphs: without it a shard's memory grows by ~15 MB per
    architecture (4 GB after 60 of them)."""
    import gc

    import keras

    keras.backend.clear_session()
    gc.collect()


def load_table_data(recipe: dict):
    from effscale.data.pipeline import DataSpec, load_data

    spec = DataSpec(recipe["dataset"], resolution=recipe["resolution"], seed=0,
                    train_fraction=recipe.get("train_fraction"))
    return load_data(spec, batch_size=recipe["batch_size"], in_memory=True)  # same batches, cheaper


def table_statistics(rows: list) -> dict:
    """Seed-to-seed Spearman of the proxy (and of full training), the spread of seed-mean
    accuracy across architectures against seed noise (the RMS difference of two seeds over
    sqrt 2, as ``effscale proxy`` reports it), and the proxy's Spearman with full training."""
    import numpy as np

    from effscale.common.stats import spearman

    def seed_stats(pairs):
        if len(pairs) < 3:
            return None, None
        a = np.asarray(pairs, dtype=float)
        return spearman(a[:, 0], a[:, 1])[0], float(np.sqrt(np.mean((a[:, 0] - a[:, 1]) ** 2) / 2))

    proxy_pairs = [r["accuracy_seeds"][:2] for r in rows if len(r.get("accuracy_seeds", [])) >= 2]
    rho, noise = seed_stats(proxy_pairs)
    means = [r["accuracy"] for r in rows]
    stats = {"architectures": len(rows), "proxy_seed_spearman": rho, "proxy_seed_noise": noise,
             "accuracy_spread": float(np.std(means, ddof=1)) if len(means) > 1 else None,
             "accuracy_min": min(means, default=None), "accuracy_max": max(means, default=None)}
    full = [r for r in rows if "full" in r]
    stats["full_architectures"] = len(full)
    full_rho, full_noise = seed_stats([r["full"]["accuracy_seeds"][:2] for r in full
                                       if len(r["full"]["accuracy_seeds"]) >= 2])
    stats.update(full_seed_spearman=full_rho, full_seed_noise=full_noise)
    if len(full) >= 3:
        proxy = [r["accuracy"] for r in full]
        stats["proxy_vs_full_spearman"] = spearman(proxy, [r["full"]["accuracy"] for r in full])[0]
        stats["proxy_vs_full_test_spearman"] = spearman(proxy, [r["full"]["test_accuracy"] for r in full])[0]
    return stats


def jsonl_entries(work: str, pattern: str):
    """The JSON lines of every ``WORK/PATTERN`` log; a torn last line (killed mid-write) is skipped."""
    for path in sorted(glob.glob(os.path.join(work, pattern))):
        with open(path) as handle:
            for line in handle:
                try:
                    yield json.loads(line)
                except ValueError:
                    continue


def read_rows(work: str, table: str | None = None) -> dict:
    """Rows by key from ``table`` (a committed, possibly partial table) and every shard's log."""
    rows = {}
    if table and os.path.exists(table):
        with open(table) as handle:
            rows.update((row["key"], row) for row in json.load(handle)["rows"])
    rows.update((row["key"], row) for row in jsonl_entries(work, "rows-*.jsonl"))
    return rows


def append_row(path: str, row: dict) -> None:
    with open(path, "a") as handle:
        handle.write(json.dumps(row) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def machine() -> str:
    return f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores, Python {platform.python_version()}"


def write_table(out: str, genotypes: list, rows: dict, recipe: dict, space, command: str, work: str,
                full: dict | None = None) -> dict:
    from effscale.common.io import write_json
    from effscale.search.objectives import Reward
    from effscale.search import analytic_costs

    proxies, fulls = read_proxies(work), read_full(work)
    ordered = []
    for genotype in genotypes:
        if genotype.key in rows:
            row = {**rows[genotype.key], **proxies.get(genotype.key, {})}
            if genotype.key in fulls:
                row["full"] = fulls[genotype.key]
            ordered.append(row)
    target = analytic_costs(space.reference, 10)["macs"]
    meta = {"space": space.to_dict(), "recipe": recipe, "cost_variant": f"w=1,d=1,r={space.reference.resolution}",
            "reward": Reward("macs", target, "soft").to_dict(), "machine": machine(), "command": command,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "sampled": len(genotypes), "count": len(ordered), "complete": len(ordered) == len(genotypes),
            "proxy_batch": {"split": "validation", "batch": 0, "seed": 0, "batch_size": recipe["batch_size"]}}
    if full is not None:
        meta["full_recipe"] = full
        meta["statistics"] = table_statistics(ordered)
    table = {"meta": meta, "rows": ordered}
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    write_json(out, table)
    return table


def read_full(work: str) -> dict:
    """Full-training results by key from ``WORK/full-*.jsonl``."""
    return {entry.pop("key"): entry for entry in jsonl_entries(work, "full-*.jsonl")}


def add_full(work: str, genotypes: list, rows: dict, recipe: dict, count: int, shard: tuple = (0, 1)) -> None:
    """Train the first ``count`` sampled architectures with the full ``recipe`` (validation and
    test accuracy), appending to ``WORK/full-SHARD.jsonl``."""
    done = read_full(work)
    todo = [g for position, g in enumerate(genotypes[:count]) if position % shard[1] == shard[0]
            and g.key not in done and "full" not in rows.get(g.key, {})]
    data = load_table_data(recipe) if todo else None
    started = time.monotonic()
    for number, genotype in enumerate(todo, start=1):
        entry = {"key": genotype.key, **train_seeds(genotype, data, recipe, test=True)}
        append_row(os.path.join(work, f"full-{shard[0]}.jsonl"), entry)
        release_models()
        elapsed = time.monotonic() - started
        print(f"full {number}/{len(todo)} {genotype.key} accuracy {entry['accuracy']:.4f} test "
              f"{entry['test_accuracy']:.4f} train {entry['train_seconds']:.0f}s | eta "
              f"{elapsed / number * (len(todo) - number) / 60:.1f} min", flush=True)


def read_proxies(work: str) -> dict:
    """Zero-cost proxy scores by key from ``WORK/proxies*.jsonl``."""
    return {entry.pop("key"): entry for entry in jsonl_entries(work, "proxies*.jsonl")}


def add_proxies(work: str, genotypes: list, rows: dict, recipe: dict, seed: int = 0, shard: tuple = (0, 1)) -> None:
    """Score every trained architecture without proxy columns (synflow, grad_norm, naswot) on the
    first validation batch, appending to ``WORK/proxies.jsonl``; the table merges them in."""
    from effscale.search import zero_cost

    data = load_table_data(recipe)
    batch = zero_cost.first_batch(data, seed=seed)
    variant = _variant(recipe)
    done = read_proxies(work)
    todo = [g for position, g in enumerate(genotypes) if position % shard[1] == shard[0]
            and g.key in rows and g.key not in done and rows[g.key].get("synflow") is None]
    for number, genotype in enumerate(todo, start=1):
        entry, seconds = {"key": genotype.key}, {}
        for name in PROXY_COLUMNS:
            started = time.perf_counter()
            entry[name] = float(zero_cost.score(genotype, name, batch, variant, data.num_classes, seed=seed))
            seconds[name] = round(time.perf_counter() - started, 3)
        entry["proxy_seconds"] = seconds
        append_row(os.path.join(work, f"proxies-{shard[0]}.jsonl"), entry)
        print(f"proxies {number}/{len(todo)} {genotype.key} "
              + " ".join(f"{n}={entry[n]:.4g}" for n in PROXY_COLUMNS), flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="digits",
                        help="which table: its sub-space, recipe, size and default --out / --work")
    parser.add_argument("--out", help="the table (default: the preset's)")
    parser.add_argument("--work", help="per-shard row logs, resumable (default: the preset's)")
    parser.add_argument("--count", type=int, help="architectures to sample, reference included (default: the preset's)")
    parser.add_argument("--limit", type=int, help="stop after this many new architectures (smoke mode)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")
    parser.add_argument("--seeds", help="training seeds averaged per architecture (default: the preset's, 0,1)")
    parser.add_argument("--epochs", type=int, help="proxy epochs (default: the preset's)")
    parser.add_argument("--resolution", type=int, help="image size (default: the preset's)")
    parser.add_argument("--dataset", help="another source of the same shape as the preset's (e.g. an IDX folder)")
    parser.add_argument("--shard", default="0/1", help="I/N: train every N-th architecture starting at I")
    parser.add_argument("--no-latency", action="store_true", help="skip LiteRT latency (smoke mode)")
    parser.add_argument("--proxies", action="store_true", help="add zero-cost proxy columns to --out")
    parser.add_argument("--full", action="store_true", help="fully train the preset's first architectures")
    parser.add_argument("--full-count", type=int, help="architectures to fully train (default: the preset's)")
    args = parser.parse_args(argv)
    preset = PRESETS[args.preset]
    if args.full and "full" not in preset:
        parser.error(f"preset {args.preset!r} has no full training")
    try:
        index, shards = (int(part) for part in args.shard.split("/"))
        if not 0 <= index < shards:
            raise ValueError
    except ValueError:
        parser.error(f"--shard {args.shard!r}: expected I/N with 0 <= I < N")
    out, work = args.out or preset["out"], args.work or preset["work"]
    count = args.count or preset["count"]
    recipe = dict(preset["recipe"])
    for key, value in (("epochs", args.epochs), ("resolution", args.resolution), ("dataset", args.dataset)):
        if value is not None:
            recipe[key] = value
    if args.seeds:
        recipe["seeds"] = [int(s) for s in args.seeds.split(",")]
    full = None
    if "full" in preset:
        full = {**recipe, **{k: v for k, v in preset["full"].items() if k != "count"}}

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow already running in this process (called from Python): keep its threads
        pass
    from effscale.latency import cached_latency
    from effscale.search import analytic_costs, design_variant

    space = subspace(args.preset)
    genotypes = sample(space, count, args.seed)
    if os.path.exists(out):
        with open(out) as handle:
            saved = json.load(handle)["meta"]
        if saved["recipe"] != recipe or saved["space"] != json.loads(json.dumps(space.to_dict())):
            parser.error(f"{out} holds a table of another recipe or sub-space; choose another --out")
    os.makedirs(work, exist_ok=True)
    rows = read_rows(work, out)
    given = list(argv if argv is not None else sys.argv[1:])
    for flag, takes_value in (("--shard", True), ("--proxies", False), ("--full", False)):
        if flag in given:
            at = given.index(flag)
            del given[at:at + 1 + takes_value]
    command = " ".join(["python benchmarks/tabular/generate.py", *given])  # shards, proxies, full: same table

    def write():
        return write_table(out, genotypes, read_rows(work, out), recipe, space, command, work, full)

    if args.proxies:
        add_proxies(work, genotypes, rows, recipe, shard=(index, shards))
        print(f"table: {write()['meta']['count']} architectures, proxy scores merged into {out}")
        return 0
    if args.full:
        add_full(work, genotypes, rows, full, args.full_count or preset["full"]["count"], shard=(index, shards))
        print(f"table: full training merged into {out}: {write()['meta']['statistics']}")
        return 0
    mine = [g for position, g in enumerate(genotypes) if position % shards == index and g.key not in rows]
    if args.limit is not None:
        mine = mine[:args.limit]
    data = load_table_data(recipe)
    log = os.path.join(work, f"rows-{index}.jsonl")
    started = time.monotonic()
    for done, genotype in enumerate(mine, start=1):
        row = {"key": genotype.key, "genotype": genotype.encode(), "values": space.to_values(genotype),
               **train_seeds(genotype, data, recipe), **analytic_costs(genotype, data.num_classes)}
        row["latency"] = None if args.no_latency else float(cached_latency(
            genotype, design_variant(genotype), os.path.join(work, "latency"), classes=data.num_classes,
            runs=10, warmup=2, threads=1))
        append_row(log, row)
        write()
        release_models()
        elapsed = time.monotonic() - started
        first = f" (epoch 1 {row['accuracy_epoch1']:.4f})" if "accuracy_epoch1" in row else ""
        print(f"{done}/{len(mine)} {genotype.key} accuracy {row['accuracy']:.4f}{first} "
              f"macs {row['macs'] / 1e6:.2f}M train {row['train_seconds']:.1f}s | eta "
              f"{elapsed / done * (len(mine) - done) / 60:.1f} min", flush=True)
    table = write()
    print(f"table: {table['meta']['count']}/{table['meta']['sampled']} architectures in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
