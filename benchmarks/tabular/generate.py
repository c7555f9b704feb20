"""Generate the tabular benchmark: proxy-train a seeded sample of effscale's own search space on the
bundled digits and record each architecture's accuracy and costs (the table ``effscale.search.tabular``'s
``TabularObjective`` reads, so an oracle can run a 100-trial search in seconds).

The sub-space (3,456 genotypes) is the ``tiny`` baseline with stages 2-4 open: kernel {3, 5},
expand ratio {3, 4, 6}, squeeze-excite {0, 0.25}, and stage 3 one block fewer or not. Stage 1 (the
expand-1 stem block), strides, filters, stem and head stay ``tiny``'s. The reference is always the
first architecture; the others are distinct uniform samples (numpy seed ``--seed``).

Each architecture trains ``--epochs`` epochs at ``--resolution`` px on digits (SGD 0.05, momentum
0.9, batch 64, BN momentum 0.9: the search's own proxy recipe) once per seed of ``--seeds``; the
table keeps the mean validation accuracy, the mean accuracy after epoch 1 of the same runs (the
fidelity a 1-epoch proxy would have), multiply-adds / parameters at the design resolution,
LiteRT latency on one thread and the wall time of one from-scratch proxy training (build, trace,
train: what one search trial costs). TensorFlow runs on one thread so shards can run side by side.

Work is resumable: every finished architecture is appended to ``WORK/rows-SHARD.jsonl`` at once,
a rerun skips what is there or already in ``--out``, and the table (``--out``) is rewritten atomically from all shards
after every architecture, with ``meta.complete`` false until every sampled architecture is in.
``--proxies`` scores the trained architectures with the zero-cost proxies (``effscale.search.zero_cost``:
synflow, grad_norm, naswot on the first validation batch, untrained weights of seed 0) into
``WORK/proxies-SHARD.jsonl`` (``--shard`` splits it too), merged into the table by every write (it can run beside the training shards).

    python benchmarks/tabular/generate.py                         # the committed table (~1.5 h CPU)
    python benchmarks/tabular/generate.py --shard 0/2 & python benchmarks/tabular/generate.py --shard 1/2
    python benchmarks/tabular/generate.py --proxies               # zero-cost columns
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
SUBSPACE = {"reference": "tiny", "open": ("kernel", "expand", "se", "repeats"),
            "options": {"kernel": (3, 5), "expand": (3, 6), "se": (0.0, 0.25), "repeats": (-1, 0)},
            "stages": (2, 3, 4)}
PROXY_COLUMNS = ("synflow", "grad_norm", "naswot")


def subspace():
    from effscale.search.space import SearchSpace

    return SearchSpace(SUBSPACE["reference"], open=SUBSPACE["open"], options=SUBSPACE["options"],
                       stages=SUBSPACE["stages"])


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


def train_seeds(genotype, data, recipe: dict) -> dict:
    """Train ``genotype`` once per seed; later seeds reuse the traced step (fresh weights and
    optimizer state), so only the first run pays for tracing, as one search trial would."""
    import keras
    import numpy as np

    from effscale.builder import build
    from effscale.search.proxy import ProxySettings

    settings = ProxySettings(epochs=recipe["epochs"], batch_size=recipe["batch_size"], optimizer=recipe["optimizer"],
                             learning_rate=recipe["learning_rate"], momentum=recipe["momentum"],
                             bn_momentum=recipe["bn_momentum"], schedule="constant")
    variant = f"w={recipe['width']:g},d={recipe['depth']:g},r={recipe['resolution']}"
    finals, firsts, model, train_seconds = [], [], None, None
    for seed in recipe["seeds"]:
        started = time.perf_counter()
        keras.utils.set_random_seed(seed)
        fresh = build(genotype, variant, classes=data.num_classes, bn_momentum=settings.bn_momentum)
        if model is None:
            model = fresh
            model.compile(settings.make_optimizer(), "sparse_categorical_crossentropy", metrics=["accuracy"],
                          jit_compile=False)
        else:
            model.set_weights(fresh.get_weights())
            for variable in model.optimizer.variables:
                if "learning_rate" not in variable.path:
                    variable.assign(np.zeros(variable.shape, variable.dtype))
        history = model.fit(data.train, validation_data=data.validation, epochs=settings.epochs, verbose=0).history
        if train_seconds is None:
            train_seconds = time.perf_counter() - started
        accuracies = history["val_accuracy"]
        if not all(np.isfinite(history["loss"])):
            raise RuntimeError(f"{genotype.key}: NaN loss with seed {seed}")
        finals.append(float(accuracies[-1]))
        firsts.append(float(accuracies[0]))
    return {"accuracy": float(np.mean(finals)), "accuracy_seeds": finals, "accuracy_epoch1": float(np.mean(firsts)),
            "train_seconds": round(train_seconds, 3)}


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


def write_table(out: str, genotypes: list, rows: dict, recipe: dict, space, command: str, work: str) -> dict:
    from effscale.io import write_json
    from effscale.search.objectives import Reward
    from effscale.search import analytic_costs

    proxies = read_proxies(work)
    ordered = [{**rows[g.key], **proxies.get(g.key, {})} for g in genotypes if g.key in rows]
    target = analytic_costs(space.reference, 10)["macs"]
    meta = {"space": space.to_dict(), "recipe": recipe, "cost_variant": f"w=1,d=1,r={space.reference.resolution}",
            "reward": Reward("macs", target, "soft").to_dict(), "machine": machine(), "command": command,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "sampled": len(genotypes), "count": len(ordered), "complete": len(ordered) == len(genotypes),
            "proxy_batch": {"split": "validation", "batch": 0, "seed": 0, "batch_size": recipe["batch_size"]}}
    table = {"meta": meta, "rows": ordered}
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    write_json(out, table)
    return table


def read_proxies(work: str) -> dict:
    """Zero-cost proxy scores by key from ``WORK/proxies*.jsonl``."""
    return {entry.pop("key"): entry for entry in jsonl_entries(work, "proxies*.jsonl")}


def add_proxies(work: str, genotypes: list, rows: dict, recipe: dict, seed: int = 0, shard: tuple = (0, 1)) -> None:
    """Score every trained architecture without proxy columns (synflow, grad_norm, naswot) on the
    first validation batch, appending to ``WORK/proxies.jsonl``; the table merges them in."""
    from effscale.search import zero_cost
    from effscale.data import load_data

    data = load_data("digits", resolution=recipe["resolution"], batch_size=recipe["batch_size"], seed=0)
    batch = zero_cost.first_batch(data, seed=seed)
    variant = f"w={recipe['width']:g},d={recipe['depth']:g},r={recipe['resolution']}"
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
    parser.add_argument("--out", default=os.path.join(HERE, "table.json"))
    parser.add_argument("--work", default=os.path.join(HERE, "work"), help="per-shard row logs (resumable)")
    parser.add_argument("--count", type=int, default=200, help="architectures to sample (reference included)")
    parser.add_argument("--limit", type=int, help="stop after this many new architectures (smoke mode)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")
    parser.add_argument("--seeds", default="0,1", help="training seeds averaged per architecture")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--resolution", type=int, default=16)
    parser.add_argument("--shard", default="0/1", help="I/N: train every N-th architecture starting at I")
    parser.add_argument("--no-latency", action="store_true", help="skip LiteRT latency (smoke mode)")
    parser.add_argument("--proxies", action="store_true", help="add zero-cost proxy columns to --out")
    args = parser.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow already running in this process (called from Python): keep its threads
        pass
    recipe = {"dataset": "digits", "resolution": args.resolution, "width": 1.0, "depth": 1.0, "epochs": args.epochs,
              "batch_size": 64, "optimizer": "sgd", "learning_rate": 0.05, "momentum": 0.9, "bn_momentum": 0.9,
              "seeds": [int(s) for s in args.seeds.split(",")]}
    index, shards = (int(part) for part in args.shard.split("/"))
    from effscale.data import load_data
    from effscale.latency import cached_latency
    from effscale.search import analytic_costs, design_variant

    space = subspace()
    genotypes = sample(space, args.count, args.seed)
    os.makedirs(args.work, exist_ok=True)
    if os.path.exists(args.out):
        with open(args.out) as handle:
            saved = json.load(handle)["meta"]
        if saved["recipe"] != recipe or saved["space"] != json.loads(json.dumps(space.to_dict())):
            parser.error(f"{args.out} holds a table of another recipe or sub-space; choose another --out")
    rows = read_rows(args.work, args.out)
    given = list(argv if argv is not None else sys.argv[1:])
    for flag, takes_value in (("--shard", True), ("--proxies", False)):
        if flag in given:
            at = given.index(flag)
            del given[at:at + 1 + takes_value]
    command = " ".join(["python benchmarks/tabular/generate.py", *given])  # shards and proxies: same table
    if args.proxies:
        add_proxies(args.work, genotypes, rows, recipe, shard=(index, shards))
        table = write_table(args.out, genotypes, read_rows(args.work, args.out), recipe, space, command, args.work)
        print(f"table: {table['meta']['count']} architectures, proxy scores merged into {args.out}")
        return 0
    mine = [g for position, g in enumerate(genotypes) if position % shards == index and g.key not in rows]
    if args.limit is not None:
        mine = mine[:args.limit]
    data = load_data("digits", resolution=args.resolution, batch_size=64, seed=0)
    log = os.path.join(args.work, f"rows-{index}.jsonl")
    started = time.monotonic()
    for done, genotype in enumerate(mine, start=1):
        row = {"key": genotype.key, "genotype": genotype.encode(), "values": space.to_values(genotype),
               **train_seeds(genotype, data, recipe), **analytic_costs(genotype, data.num_classes)}
        row["latency"] = None if args.no_latency else float(cached_latency(
            genotype, design_variant(genotype), os.path.join(args.work, "latency"), classes=data.num_classes,
            runs=10, warmup=2, threads=1))
        append_row(log, row)
        rows[row["key"]] = row
        rows.update(read_rows(args.work))
        write_table(args.out, genotypes, rows, recipe, space, command, args.work)
        elapsed = time.monotonic() - started
        print(f"{done}/{len(mine)} {genotype.key} accuracy {row['accuracy']:.4f} (epoch 1 {row['accuracy_epoch1']:.4f}) "
              f"macs {row['macs'] / 1e6:.2f}M train {row['train_seconds']:.1f}s | eta "
              f"{elapsed / done * (len(mine) - done) / 60:.1f} min", flush=True)
    table = write_table(args.out, genotypes, read_rows(args.work, args.out), recipe, space, command, args.work)
    print(f"table: {table['meta']['count']}/{table['meta']['sampled']} architectures in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
