"""effscale against the tools a Keras user would pick instead, at equal budgets of CPU seconds.

Three tools, each given the same budget of CPU seconds (user + system time of its process and
the processes it waits for, ``resource.getrusage``; wall seconds are recorded too, since a busy
machine stretches them):

* ``effscale``: one family run (``effscale.run_family``: search, scaling, members), its settings
  sized to the budget (``EFFSCALE_PRESETS``; a family run cannot stop half-way, so its CPU
  seconds can fall under or over the budget: the results say by how much);
* ``keras-tuner``: ``keras_tuner.RandomSearch`` over ``keras_tuner.applications.HyperResNet``
  (ResNet v1 / v2 / ResNeXt, depths, pooling, optimizer and learning rate: the image hypermodel
  that takes a 28 px input), one-hot labels as the hypermodel's loss wants, pixels scaled to
  [0, 1], 20% of the training images held out by Keras' ``validation_split``; stopped when the
  budget is spent (the running trial stops at the next batch, no new trial starts), then its best
  trial by validation accuracy evaluated on the test split;
* ``autokeras``: ``autokeras.ImageClassifier`` with the same budget stop (passed to every trial's
  ``fit``), then AutoKeras' own refit of the best trial on training + validation images (not
  stopped, counted), run by the Python given with ``--autokeras-python`` (its own virtual
  environment: AutoKeras 3.0.0 works with Keras 3.10, not 3.15).

Every tool runs in a subprocess (``python peers.py --worker SPEC``), so its CPU time is its own
and a crash of a peer is one failed result, not a dead harness; a worker that runs far past its
budget (``KILL_FACTOR`` times it) is killed by ``RLIMIT_CPU``. Each (tool, budget, seed) is one
run; a finished run, ok or failed, is written atomically as ``OUT/TOOL-bBUDGET-sSEED.json`` and
skipped by the next invocation (``--retry-failed`` reruns the failed ones); a run killed half-way
leaves no result and starts again from scratch, so that its CPU seconds are one process's.
``--shard I/N`` takes every N-th run. ``OUT/results.md`` (the table) and ``OUT/plot.png`` (test
top-1 against CPU seconds and against parameters) are drawn from the result files alone.

Models reported: for effscale every family member (the one with the best validation top-1
marked as the run's pick), for the peers the best trial's model; parameters, multiply-adds
(TensorFlow's graph profiler, half its float operations), test top-1. Selection never looks at
the test split.

    .venv/bin/python benchmarks/peers.py --autokeras-python /work/ak-venv/bin/python   # Fashion-MNIST, hours
    .venv/bin/python benchmarks/peers.py --tools effscale,keras-tuner                  # without AutoKeras
    .venv/bin/python benchmarks/peers.py --smoke --tools effscale,keras-tuner --out /tmp/peers/out
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TOOLS = ("effscale", "keras-tuner", "autokeras")
KILL_FACTOR = 3.0  # RLIMIT_CPU of a worker: this many times its budget, plus start-up slack
START_SLACK = 120.0

SETTINGS = {
    # Fashion-MNIST's official 60,000 / 10,000 split; every model trained with batch 64.
    "full": {"dataset": "fashion_mnist", "budgets": (1800, 7200), "seeds": (0, 1, 2), "epochs": 3,
             "batch_size": 64, "train_examples": None},
    # Digits (bundled): 8 px images doubled to 16 px for the peers' hypermodels, one epoch.
    "smoke": {"dataset": "digits", "budgets": (25,), "seeds": (0,), "epochs": 1, "batch_size": 64,
              "train_examples": None},
}

# The smoke mode pins HyperResNet to its smallest network (ResNet-50 v2; pooling, optimizer and
# learning rate still searched): a ResNet-101 or -152 takes minutes of CPU to build and trace.
SMOKE_PINNED = {"version": "v2", "conv3_depth": 4, "conv4_depth": 6}

# effscale's family settings per budget of CPU seconds (the largest preset at or under the budget;
# the smallest below the first): sized from the headline run (docs/benchmarks.md), where 30 trials,
# 4 coefficient points and three 3-epoch members took about 1,500 s wall on 2 cores.
EFFSCALE_PRESETS = {
    0: {"search": {"oracle": "random", "trials": 2, "epochs": 1, "cost": "macs", "target": 2e5},
        "coefficients": {"search": False}, "scaling": {"family": "phi=0", "base": "w=0.25,d=0.25,r=12"},
        "training": {"epochs": 1, "batch_size": 64}},
    1800: {"search": {"oracle": "random", "prescreen": "reward:10", "trials": 8, "epochs": 1, "train_fraction": 0.1,
                      "cost": "macs", "target": 2e6},
           "coefficients": {"search": False}, "scaling": {"family": "phi=0..1"},
           "training": {"epochs": 3, "batch_size": 64}},
    7200: {"search": {"oracle": "random", "prescreen": "reward:10", "trials": 30, "epochs": 1, "train_fraction": 0.1,
                      "cost": "macs", "target": 2e6},
           "coefficients": {"search": True, "max_trials": 4, "epochs": 1}, "scaling": {"family": "phi=0..2"},
           "training": {"epochs": 3, "batch_size": 64}},
}


def effscale_preset(budget: float, smoke: bool = False) -> dict:
    """The family settings for ``budget`` CPU seconds.

    >>> effscale_preset(3600)["search"]["trials"], effscale_preset(10_000)["search"]["trials"]
    (8, 30)
    >>> effscale_preset(600)["search"]["trials"], effscale_preset(20, smoke=True)["search"]["trials"]
    (8, 2)
    """
    if smoke:
        return EFFSCALE_PRESETS[0]
    sizes = sorted(k for k in EFFSCALE_PRESETS if k)
    return EFFSCALE_PRESETS[max([k for k in sizes if k <= budget], default=sizes[0])]


def cpu_seconds() -> dict:
    """This process's user and system CPU seconds, its waited-for children's included."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    user, system = own.ru_utime + children.ru_utime, own.ru_stime + children.ru_stime
    return {"user": user, "system": system, "total": user + system}


def run_name(tool: str, budget: float, seed: int) -> str:
    """The result file's stem of one run.

    >>> run_name("keras-tuner", 1800, 2)
    'keras-tuner-b1800-s2'
    """
    return f"{tool}-b{budget:g}-s{seed}"


def plan(tools, budgets, seeds, shard: tuple[int, int] = (0, 1)) -> list[tuple[str, float, int]]:
    """Every (tool, budget, seed), cheapest budgets first, then this shard's share.

    >>> plan(["effscale", "keras-tuner"], [7200, 1800], [0], (1, 2))
    [('keras-tuner', 1800, 0), ('keras-tuner', 7200, 0)]
    """
    runs = [(tool, budget, seed) for budget in sorted(budgets) for seed in seeds for tool in tools]
    index, count = shard
    return [run for position, run in enumerate(runs) if position % count == index]


def parse_shard(text: str) -> tuple[int, int]:
    """``I/N`` of ``--shard``.

    >>> parse_shard("1/3")
    (1, 3)
    """
    index, _, count = text.partition("/")
    if not (index.isdigit() and count.isdigit()) or not 0 <= int(index) < int(count):
        raise ValueError(f"--shard takes I/N with 0 <= I < N (e.g. 0/2), got {text!r}")
    return int(index), int(count)


def check_dataset(name: str) -> str:
    """``--dataset``: a source with an official test split that effscale reads as IDX files
    (``fashion_mnist``, ``mnist`` where installed, or ``idx:FOLDER``); a ValueError otherwise.

    >>> check_dataset("cifar10")
    Traceback (most recent call last):
    ...
    ValueError: --dataset takes fashion_mnist, mnist or idx:FOLDER (IDX files with a t10k test split), got 'cifar10'
    """
    from effscale.common.errors import UserError
    from effscale.data.idx import idx_files, locate

    if name.startswith("idx:"):
        if not name[4:] or idx_files(os.path.expanduser(name[4:])) is None:
            raise ValueError(f"--dataset {name}: no train and t10k IDX files in that folder")
    elif name in ("fashion_mnist", "mnist"):
        try:
            kind, where = locate(name)
        except UserError as error:
            raise ValueError(f"--dataset {name}: {error}") from None
        if kind == "tfds":
            raise ValueError(f"--dataset {name}: only a tensorflow-datasets copy at {where!r}; pass idx:FOLDER")
    else:
        raise ValueError("--dataset takes fashion_mnist, mnist or idx:FOLDER (IDX files with a t10k test split), "
                         f"got {name!r}")
    return name


def parse_list(text: str, kind, name: str) -> list:
    """A comma-separated ``--budgets`` or ``--seeds`` value.

    >>> parse_list("1800,7200", float, "--budgets")
    [1800.0, 7200.0]
    """
    try:
        values = [kind(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or any(v < 0 for v in values) or (kind is float and any(v <= 0 for v in values)):
        raise ValueError(f"{name} takes comma-separated positive numbers, got {text!r}")
    return values


# ----------------------------------------------------------------------------------------------
# Data: one npz of uint8 arrays that every worker reads (the AutoKeras environment has no effscale)


def prepare_data(settings: dict, path: str) -> dict:
    """Write the train and test arrays of ``settings["dataset"]`` to ``path`` (npz, uint8 images
    (N, H, W, 1), int32 labels): Fashion-MNIST's official split as installed, or for the smoke
    mode digits' held-out test split exactly as effscale draws it (seed 0), its 8 px images
    doubled to 16 px. Returns the sizes."""
    import numpy as np

    from effscale.common.io import atomic_path

    if settings["dataset"] == "digits":
        from sklearn.datasets import load_digits

        from effscale.data.splits import split_indices

        bunch = load_digits()
        images = np.round(bunch.images * (255.0 / 16.0)).astype("uint8").repeat(2, axis=1).repeat(2, axis=2)[..., None]
        labels = bunch.target.astype("int32")
        parts = split_indices(labels, 0.2, 0.2, seed=0)  # effscale's digits test split (load_data's defaults)
        rest = np.concatenate([parts["train"], parts["validation"]])
        train, test = (images[rest], labels[rest]), (images[parts["test"]], labels[parts["test"]])
    else:
        from effscale.data.idx import read_installed

        train, test, _ = read_installed(settings["dataset"])
    if settings.get("train_examples"):
        train = (train[0][: settings["train_examples"]], train[1][: settings["train_examples"]])
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_path(path) as temporary:
        np.savez(temporary, x_train=train[0], y_train=train[1], x_test=test[0], y_test=test[1])
    return {"train_images": int(len(train[1])), "test_images": int(len(test[1])),
            "image_shape": [int(s) for s in train[0].shape[1:]]}


# ----------------------------------------------------------------------------------------------
# Workers: each runs in its own process and writes WORK/worker.json


def forward_multiply_adds(model) -> int | None:
    """Half of TensorFlow's graph-profiler float operations of one forward pass (a peer's
    environment need not hold effscale, whose ``cost.profiler_flops`` counts the same way)."""
    try:
        import tensorflow as tf

        spec = tf.TensorSpec([1, *model.input_shape[1:]], model.inputs[0].dtype)
        graph = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec).graph
        options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
        options["output"] = "none"
        profile = tf.compat.v1.profiler.profile(graph=graph, run_meta=tf.compat.v1.RunMetadata(), cmd="op",
                                                options=options)
        return int(profile.total_float_ops) // 2
    except Exception:  # a layer the profiler cannot trace: no count rather than a wrong one
        return None


def budget_callback(keras, budget: float, on_spent):
    """A Keras callback that stops a training begun before ``budget`` CPU seconds were spent at
    its first batch after them, and calls ``on_spent()`` once (the tuner then starts no new
    trial). A training begun afterwards runs to its end: AutoKeras' refit of the best trial on
    training + validation images, whose CPU seconds are counted like the rest. Tuners deep-copy
    callbacks per trial, so the state is the class's."""

    class Budget(keras.callbacks.Callback):
        spent_at = None

        def on_train_begin(self, logs=None):
            self.stoppable = Budget.spent_at is None

        def on_train_batch_end(self, batch, logs=None):
            if getattr(self, "stoppable", True) and cpu_seconds()["total"] >= budget:
                self.model.stop_training = True
                if Budget.spent_at is None:
                    Budget.spent_at = cpu_seconds()["total"]
                    on_spent()

    return Budget()


def _stop_oracle(tuner) -> None:
    tuner.oracle.max_trials = max(1, len(tuner.oracle.trials))


def _tuner_record(tuner, x_test, y_test, started: dict) -> dict:
    """The best trial (by the tuner's validation objective): its model on the test split."""
    completed = [t for t in tuner.oracle.trials.values() if t.score is not None]
    if not completed:
        raise RuntimeError("no trial finished within the budget")
    searched = cpu_seconds()["total"] - started["total"]
    best_trial = tuner.oracle.get_best_trials(1)[0]
    model = tuner.get_best_models(1)[0]
    test = model.evaluate(x_test, y_test, verbose=0, return_dict=True)
    return {"search_cpu_seconds": round(searched, 2), "trials": len(completed),
            "models": [{"name": f"trial {best_trial.trial_id}", "picked": True,
                        "hyperparameters": best_trial.hyperparameters.values,
                        "validation_accuracy": best_trial.score,
                        "parameters": int(model.count_params()), "multiply_adds": forward_multiply_adds(model),
                        "test_top1": float(test.get("accuracy", test.get("categorical_accuracy", float("nan"))))}]}


def worker_keras_tuner(spec: dict, started: dict) -> dict:
    import keras
    import keras_tuner
    import numpy as np

    data = np.load(spec["data"])
    classes = int(data["y_train"].max()) + 1
    x_train, x_test = (data[k].astype("float32") / 255.0 for k in ("x_train", "x_test"))
    y_train, y_test = (keras.utils.to_categorical(data[k], classes) for k in ("y_train", "y_test"))
    keras.utils.set_random_seed(spec["seed"])
    hypermodel = keras_tuner.applications.HyperResNet(input_shape=x_train.shape[1:], classes=classes)
    pinned = keras_tuner.HyperParameters()
    for name, value in spec.get("pinned", {}).items():  # the smoke mode: the smallest ResNet only
        pinned.Fixed(name, value)
    tuner = keras_tuner.RandomSearch(hypermodel, objective="val_accuracy", max_trials=100_000, seed=spec["seed"],
                                     hyperparameters=pinned, tune_new_entries=True, directory=spec["work"],
                                     project_name="search", overwrite=True)
    budget = budget_callback(keras, started["total"] + spec["budget"], lambda: _stop_oracle(tuner))
    tuner.search(x_train, y_train, epochs=spec["epochs"], batch_size=spec["batch_size"], validation_split=0.2,
                 callbacks=[budget], verbose=0)
    return {**_tuner_record(tuner, x_test, y_test, started), "hypermodel": "keras_tuner.applications.HyperResNet",
            "pinned_hyperparameters": spec.get("pinned", {}),
            "search_stopped_at_cpu_seconds": None if budget.spent_at is None else round(budget.spent_at, 2),
            "versions": {"keras": keras.__version__, "keras_tuner": keras_tuner.__version__}}


def worker_autokeras(spec: dict, started: dict) -> dict:
    import autokeras
    import keras
    import numpy as np

    data = np.load(spec["data"])
    keras.utils.set_random_seed(spec["seed"])
    classifier = autokeras.ImageClassifier(max_trials=100_000, seed=spec["seed"], directory=spec["work"],
                                           project_name="search", overwrite=True)
    budget = budget_callback(keras, started["total"] + spec["budget"], lambda: _stop_oracle(classifier.tuner))
    classifier.fit(data["x_train"], data["y_train"], epochs=spec["epochs"], batch_size=spec["batch_size"],
                   validation_split=0.2, callbacks=[budget], verbose=0)
    fitted = cpu_seconds()["total"] - started["total"]  # the search and AutoKeras' refit of its best trial
    model = classifier.export_model()
    predictions = np.asarray(classifier.predict(data["x_test"], verbose=0)).reshape(-1)
    test_top1 = float(np.mean(predictions.astype(str) == data["y_test"].astype(str)))
    best = classifier.tuner.oracle.get_best_trials(1)[0]
    return {"search_cpu_seconds": None, "fit_cpu_seconds": round(fitted, 2),
            "search_stopped_at_cpu_seconds": None if budget.spent_at is None else round(budget.spent_at, 2),
            "trials": sum(t.score is not None for t in classifier.tuner.oracle.trials.values()),
            "models": [{"name": f"trial {best.trial_id}", "picked": True, "hyperparameters": best.hyperparameters.values,
                        "validation_loss": best.score, "parameters": int(model.count_params()),
                        "multiply_adds": forward_multiply_adds(model), "test_top1": test_top1}],
            "versions": {"autokeras": autokeras.__version__, "keras": keras.__version__}}


def worker_effscale(spec: dict, started: dict) -> dict:
    import keras

    import effscale
    from effscale.family.pipeline import run_family

    config = {"dataset": spec["dataset"], "baseline": "tiny", "reference_family": False, "seed": spec["seed"],
              **json.loads(json.dumps(spec["effscale"]))}
    config["training"]["epochs"] = spec["epochs"]
    config["training"]["batch_size"] = spec["batch_size"]
    results = run_family(config, out_dir=os.path.join(spec["work"], "family"), verbose=0)
    members = results["variants"]
    picked = max(members, key=lambda m: m["validation_top1"])["name"]
    return {"search_cpu_seconds": None, "trials": len(results["search"]["trials"]),
            "genotype": results["baseline"]["genotype"], "config": config,
            "models": [{"name": m["name"], "picked": m["name"] == picked, "validation_top1": m["validation_top1"],
                        "parameters": m["parameters"], "multiply_adds": m["multiply_adds"],
                        "test_top1": m["test_top1"]} for m in members],
            "versions": {"effscale": effscale.__version__, "keras": keras.__version__}}


WORKERS = {"effscale": worker_effscale, "keras-tuner": worker_keras_tuner, "autokeras": worker_autokeras}


def worker_main(spec_path: str) -> int:
    """Run one tool as its spec says; write ``WORK/worker.json`` (atomically, by rename)."""
    started = cpu_seconds()
    with open(spec_path) as handle:
        spec = json.load(handle)
    record = WORKERS[spec["tool"]](spec, started)
    record["worker_cpu_seconds"] = round(cpu_seconds()["total"], 2)
    path = os.path.join(spec["work"], "worker.json")
    with open(path + ".tmp", "w") as handle:
        json.dump(record, handle, indent=1, default=float)
    os.replace(path + ".tmp", path)
    return 0


# ----------------------------------------------------------------------------------------------
# The harness


def run_one(tool: str, budget: float, seed: int, settings: dict, data: str, work: str, python: str,
            smoke: bool) -> dict:
    """One run in a fresh subprocess: its result record (status ok or failed), CPU seconds of
    the subprocess from ``getrusage(RUSAGE_CHILDREN)`` before and after it."""
    import shutil

    folder = os.path.join(work, run_name(tool, budget, seed))
    shutil.rmtree(folder, ignore_errors=True)  # a run killed half-way starts again
    os.makedirs(folder)
    spec = {"tool": tool, "budget": budget, "seed": seed, "dataset": settings["dataset"], "data": os.path.abspath(data),
            "work": os.path.abspath(folder), "epochs": settings["epochs"], "batch_size": settings["batch_size"],
            "effscale": effscale_preset(budget, smoke), "pinned": SMOKE_PINNED if smoke else {}}
    spec_path = os.path.join(folder, "spec.json")
    with open(spec_path, "w") as handle:
        json.dump(spec, handle, indent=1)
    limit = int(budget * KILL_FACTOR + START_SLACK)

    def limit_cpu():
        resource.setrlimit(resource.RLIMIT_CPU, (limit, limit + 5))

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=os.pathsep.join(
        p for p in (ROOT, os.environ.get("PYTHONPATH", "")) if p) if tool == "effscale" else os.environ.get(
        "PYTHONPATH", ""))
    before, wall = cpu_seconds(), time.perf_counter()
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load = os.getloadavg()[0]
    with open(os.path.join(folder, "log.txt"), "w") as log:
        process = subprocess.run([python, os.path.abspath(__file__), "--worker", spec_path], stdout=log,
                                 stderr=subprocess.STDOUT, env=env, preexec_fn=limit_cpu, cwd=folder)
    after, wall = cpu_seconds(), time.perf_counter() - wall
    record = {"tool": tool, "budget_cpu_seconds": budget, "seed": seed, "dataset": settings["dataset"],
              "epochs_per_model": settings["epochs"], "batch_size": settings["batch_size"],
              "cpu_seconds": round(after["total"] - before["total"], 2),
              "cpu_user_seconds": round(after["user"] - before["user"], 2),
              "cpu_system_seconds": round(after["system"] - before["system"], 2),
              "wall_seconds": round(wall, 2), "started": date, "load_average_at_start": round(load, 2),
              "cpus": os.cpu_count(), "machine": platform.machine(), "python": python, "returncode": process.returncode}
    worker = os.path.join(folder, "worker.json")
    if process.returncode == 0 and os.path.exists(worker):
        with open(worker) as handle:
            record.update(json.load(handle), status="ok")
    else:
        with open(os.path.join(folder, "log.txt"), errors="replace") as handle:
            lines = [line.rstrip() for line in handle if line.strip()]
        if process.returncode < 0:  # SIGXCPU / SIGKILL: past its RLIMIT_CPU, else killed from outside
            error = f"killed by signal {-process.returncode}" + (
                f" (past its limit of {limit} CPU seconds)" if -process.returncode in (9, 24) else "")
        else:
            error = lines[-1] if lines else f"exit {process.returncode}"
        record.update(status="failed", models=[], error=error, log_tail=lines[-15:])
    return record


def load_results(out: str) -> list[dict]:
    """Every run's record in ``out``, in plan order (budget, seed, tool)."""
    records = []
    for name in sorted(os.listdir(out)) if os.path.isdir(out) else []:
        if name.endswith(".json") and "-b" in name and not name.startswith("."):
            with open(os.path.join(out, name)) as handle:
                records.append(json.load(handle))
    order = {tool: i for i, tool in enumerate(TOOLS)}
    return sorted(records, key=lambda r: (r["budget_cpu_seconds"], order.get(r["tool"], 9), r["seed"]))


def picked(record: dict) -> dict | None:
    """The run's model chosen on validation (None for a failed run).

    >>> picked({"models": [{"name": "a", "picked": False}, {"name": "b", "picked": True}]})["name"]
    'b'
    """
    return next((m for m in record.get("models", []) if m.get("picked")), None)


def summary(records: list[dict]) -> list[dict]:
    """Per (tool, budget): the picked models' test top-1 over seeds (mean, std, count), CPU
    seconds (mean), parameters of the seed-0 pick, and the failures."""
    import numpy as np

    groups = {}
    for record in records:
        groups.setdefault((record["tool"], record["budget_cpu_seconds"]), []).append(record)
    rows = []
    for (tool, budget), group in groups.items():
        ok = [r for r in group if r["status"] == "ok" and picked(r)]
        accuracies = [picked(r)["test_top1"] for r in ok]
        rows.append({"tool": tool, "budget": budget, "runs": len(group), "ok": len(ok),
                     "test_top1": float(np.mean(accuracies)) if accuracies else None,
                     "test_top1_std": float(np.std(accuracies, ddof=1)) if len(accuracies) > 1 else None,
                     "test_top1_seeds": accuracies,
                     "cpu_seconds": float(np.mean([r["cpu_seconds"] for r in group])),
                     "parameters": picked(ok[0])["parameters"] if ok else None,
                     "errors": sorted({r.get("error", "") for r in group if r["status"] != "ok"})})
    return rows


def verdicts(rows: list[dict]) -> list[str]:
    """At each budget, effscale against each peer: above / below / tie (inside seed noise, the
    95% interval of the paired seed differences holding 0), or why there is no verdict."""
    from effscale.common.stats import within_noise

    lines = []
    for row in rows:
        if row["tool"] == "effscale":
            continue
        ours = next((r for r in rows if r["tool"] == "effscale" and r["budget"] == row["budget"]), None)
        a, b = (ours or {}).get("test_top1_seeds", []), row["test_top1_seeds"]
        if min(len(a), len(b)) < 2 or len(a) != len(b):
            judged = "no verdict (fewer than two paired seeds)"
        elif within_noise(a, b):
            judged = "tie (inside seed noise)"
        else:
            judged = "effscale above" if sum(a) > sum(b) else "effscale below"
        lines.append(f"- {row['budget']:g} CPU s, effscale vs {row['tool']}: {judged}")
    return lines


def markdown(records: list[dict]) -> str:
    """The results table: one line per model of every run, then per (tool, budget) the seed
    summary of the picked models and the verdicts."""
    lines = ["| tool | budget CPU s | seed | status | CPU s used (user + sys) | wall s | model | picked | params | "
             "MACs | test top-1 |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        head = (f"| {r['tool']} | {r['budget_cpu_seconds']:g} | {r['seed']} | {r['status']} | {r['cpu_seconds']:.0f} | "
                f"{r['wall_seconds']:.0f} |")
        if r["status"] != "ok":
            lines.append(f"{head} {r.get('error', '')[:80].replace('|', '/')} | | | | |")
        for m in r.get("models", []):
            macs = "-" if m.get("multiply_adds") is None else f"{m['multiply_adds'] / 1e6:.2f}M"
            params = "-" if m.get("parameters") is None else f"{m['parameters']:,}"
            lines.append(f"{head} {m['name']} | {'yes' if m.get('picked') else ''} | {params} | {macs} | "
                         f"{m['test_top1']:.4f} |")
    rows = summary(records)
    lines += ["", "| tool | budget CPU s | runs ok | CPU s used (mean) | picked model's test top-1 (seed mean ± std) |",
              "|---|---|---|---|---|"]
    for row in rows:
        accuracy = "-" if row["test_top1"] is None else f"{row['test_top1']:.4f}" + (
            f" ± {row['test_top1_std']:.4f}" if row["test_top1_std"] is not None else " (one seed)")
        lines.append(f"| {row['tool']} | {row['budget']:g} | {row['ok']} / {row['runs']} | {row['cpu_seconds']:.0f} | "
                     f"{accuracy} |")
    lines += ["", *verdicts(rows)]
    return "\n".join(lines) + "\n"


def plot(records: list[dict], path: str) -> None:
    """Test top-1 of each run's picked model against the run's CPU seconds (left: every run
    faint, the seed mean ± std per budget joined into a curve) and of every model against its
    parameters (right), one colour per tool, one marker per budget."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from effscale.common.io import atomic_path

    import numpy as np

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    colours = {"effscale": "tab:blue", "keras-tuner": "tab:orange", "autokeras": "tab:green"}
    budgets = sorted({r["budget_cpu_seconds"] for r in records})
    markers = dict(zip(budgets, "osD^v"))
    for tool in TOOLS:
        ok = [r for r in records if r["tool"] == tool and r["status"] == "ok" and picked(r)]
        if not ok:
            continue
        for budget in budgets:  # every run faint, its budget's marker
            runs = [r for r in ok if r["budget_cpu_seconds"] == budget]
            left.scatter([r["cpu_seconds"] for r in runs], [picked(r)["test_top1"] for r in runs],
                         color=colours[tool], marker=markers[budget], alpha=0.35, s=20)
            models = [m for r in runs for m in r["models"] if m.get("parameters")]
            right.scatter([m["parameters"] for m in models], [m["test_top1"] for m in models],
                          color=colours[tool], marker=markers[budget], alpha=0.7,
                          label=f"{tool}, {budget:g} s" if models else None)
        # the curve: per budget, the seed mean (± std) of the picks at the mean CPU seconds used
        points = []
        for budget in budgets:
            runs = [r for r in ok if r["budget_cpu_seconds"] == budget]
            if runs:
                top = [picked(r)["test_top1"] for r in runs]
                points.append((np.mean([r["cpu_seconds"] for r in runs]), np.mean(top),
                               np.std(top, ddof=1) if len(top) > 1 else 0.0))
        xs, ys, errors = zip(*points)
        left.errorbar(xs, ys, yerr=errors, color=colours[tool], marker="o", capsize=3, label=tool)
    for budget in budgets:
        left.axvline(budget, color="grey", linestyle=":", linewidth=1)
    left.set(xlabel="CPU seconds used (user + system; dotted: the budgets)", ylabel="test top-1 (picked model)",
             xscale="log")
    right.set(xlabel="parameters", ylabel="test top-1", xscale="log")
    for axis in (left, right):
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:  # a folder of failed runs has no points
            axis.legend()
    dataset = records[0]["dataset"] if records else ""
    figure.suptitle(f"effscale and its peers on {dataset} at equal CPU budgets")
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=110)
    plt.close(figure)


def report(out: str) -> list[dict]:
    """Redraw ``out/results.md`` and ``out/plot.png`` from the result files."""
    from effscale.common.io import write_text

    records = load_results(out)
    write_text(os.path.join(out, "results.md"), markdown(records))
    plot(records, os.path.join(out, "plot.png"))
    return records


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="digits, a 25 CPU-second budget, one seed")
    parser.add_argument("--tools", default=",".join(TOOLS), help="comma-separated: " + ", ".join(TOOLS))
    parser.add_argument("--budgets", help="CPU seconds per run, comma-separated (default 1800,7200; smoke 25)")
    parser.add_argument("--seeds", help="comma-separated (default 0,1,2; smoke 0)")
    parser.add_argument("--dataset", help="fashion_mnist (default), mnist or idx:FOLDER; not with --smoke")
    parser.add_argument("--out", default=os.path.join(HERE, "peers"), help="the results folder (tracked)")
    parser.add_argument("--work", help="the runs' working files (default OUT/../peers-work, untracked)")
    parser.add_argument("--autokeras-python", help="the Python of AutoKeras' own virtual environment")
    parser.add_argument("--shard", default="0/1", help="I/N: run every N-th run from the I-th")
    parser.add_argument("--retry-failed", action="store_true", help="rerun runs whose result says failed")
    parser.add_argument("--report-only", action="store_true", help="redraw the table and plot, run nothing")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker_main(args.worker)
    settings = SETTINGS["smoke" if args.smoke else "full"]
    try:  # every option checked before anything is written
        tools = [t.strip() for t in args.tools.split(",") if t.strip()]
        unknown = [t for t in tools if t not in TOOLS]
        if unknown or not tools:
            raise ValueError(f"--tools: unknown {', '.join(unknown) or 'empty list'} (expected {', '.join(TOOLS)})")
        budgets = parse_list(args.budgets, float, "--budgets") if args.budgets else list(settings["budgets"])
        seeds = parse_list(args.seeds, int, "--seeds") if args.seeds else list(settings["seeds"])
        shard = parse_shard(args.shard)
        if args.dataset:
            if args.smoke:
                raise ValueError("--dataset is the full mode's; --smoke always uses digits")
            settings = {**settings, "dataset": check_dataset(args.dataset)}
        if "autokeras" in tools and not args.report_only:
            if not args.autokeras_python or not os.access(args.autokeras_python, os.X_OK):
                raise ValueError("--tools autokeras needs --autokeras-python PYTHON (its own virtual environment), "
                                 f"got {args.autokeras_python!r}")
    except ValueError as error:
        print(f"peers.py: {error}", file=sys.stderr)
        return 2
    out = os.path.abspath(args.out)
    work = os.path.abspath(args.work or os.path.join(os.path.dirname(out), os.path.basename(out) + "-work"))
    os.makedirs(out, exist_ok=True)
    if args.report_only:
        report(out)
        return 0
    from effscale.common.io import read_json, write_json

    data = os.path.join(work, "data.npz")
    if not os.path.exists(data):
        print(f"data: {prepare_data(settings, data)}", flush=True)
    for tool, budget, seed in plan(tools, budgets, seeds, shard):
        path = os.path.join(out, run_name(tool, budget, seed) + ".json")
        if os.path.exists(path) and not (args.retry_failed and read_json(path)["status"] != "ok"):
            print(f"{run_name(tool, budget, seed)}: done before, skipped", flush=True)
            continue
        python = args.autokeras_python if tool == "autokeras" else sys.executable
        record = run_one(tool, budget, seed, settings, data, work, python, args.smoke)
        write_json(path, record)
        best = picked(record)
        print(f"{run_name(tool, budget, seed)}: {record['status']}, {record['cpu_seconds']:.0f} CPU s, "
              f"{record['wall_seconds']:.0f} wall s" + (f", test top-1 {best['test_top1']:.4f}" if best else
                                                          f": {record.get('error')}"), flush=True)
        report(out)
    report(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
