"""Training throughput on an accelerator: effscale's EfficientNet-B0 against keras.applications.

One prepared script, one process, under 8 minutes on one GPU. It measures, in this order (the
later parts are skipped, and say so, if the time budget runs out):

1. ``training``: images/s of a training step of effscale's B0 and of
   ``keras.applications.EfficientNetB0`` at 224 px under the identical recipe (mixed_float16,
   SGD with momentum, sparse cross-entropy, the batch already on the device), batch 128 and 256,
   XLA (``jit_compile``) off and on; the two models alternate round by round, and the median
   round of each side and the effscale/keras ratio are reported.
2. ``pipeline``: images/s of effscale's tf.data pipeline alone (``effscale.data.pipeline.load_data``,
   augmentation on) from memory (the bundled digits, resized to 224 px and cached) and from an
   image folder of JPEG files the script writes (decoded every epoch), against the step's
   images/s from part 1: a pipeline slower than the step starves the device.
3. ``mirrored``: effscale's B0 under ``tf.distribute.MirroredStrategy`` over every visible GPU
   (batch 128 per replica), images/s and images/s per replica.
4. ``custom_loop``: ``effscale.training.train.train_variant`` with the custom loop and float16 (the
   LossScaleOptimizer path multi-worker runs use): loss finite, loss scale, accuracy.
5. ``family``: a tiny family (search, scaling, training, report) end to end on the device.

It writes ``accelerator.json`` (everything, with the machine) and ``accelerator.md`` (the
tables docs/benchmarks.md shows) into ``--out``. NVIDIA's DeepLearningExamples report about
3,454 images/s per A100 for EfficientNet-B0 training with mixed precision (their
TensorFlow2/Classification/ConvNets/efficientnet_v1 README); the Markdown table sets the
measured images/s beside that figure.

On a machine without a GPU (or with ``--smoke``) it runs a tiny smoke mode: 32 px, batch 4,
one round, XLA off, float32, steps run eagerly (tracing B0's training step twice would take a
minute on two CPU cores), a 40-image folder and a one-member family, so that the script is
always ready (tests/test_accelerator_benchmark.py runs it).

    .venv/bin/python benchmarks/accelerator.py --out runs/accelerator [--budget 450] [--smoke]
"""

from __future__ import annotations

import argparse
import glob
import os
import platform
import statistics
import sys
import tempfile
import time

NVIDIA_A100_B0_AMP_IMAGES_PER_SECOND = 3454

FULL = {"resolution": 224, "classes": 1000, "batches": (128, 256), "xla": (False, True), "rounds": 5,
        "steps": 10, "policy": "mixed_float16", "folder_images": 2048, "folder_classes": 10, "folder_source_size": 256,
        "pipeline_batches": 30, "mirrored_per_replica": 128, "eager": False, "custom_loop_epochs": 2,
        "family": {"search": {"oracle": "evolution", "cost": "macs", "target": 1.0e6, "trials": 4, "epochs": 2,
                              "resolution": 16, "width": 0.5},
                   "scaling": {"family": "phi=0;phi=1", "base": "w=0.5,d=0.5,r=16"},
                   "training": {"epochs": 5, "batch_size": 64}}}
SMOKE = {"resolution": 32, "classes": 10, "batches": (4,), "xla": (False,), "rounds": 1, "steps": 1,
         "policy": "float32", "folder_images": 40, "folder_classes": 4, "folder_source_size": 40, "pipeline_batches": 2,
         "mirrored_per_replica": 4, "eager": True, "custom_loop_epochs": 1,
         "family": {"search": {"enabled": False}, "scaling": {"family": "phi=0", "base": "w=0.25,d=0.25,r=16"},
                    "training": {"epochs": 1, "batch_size": 64}}}


class Budget:
    """Seconds left of the run's budget; parts that would start too late are skipped."""

    def __init__(self, seconds: float):
        self.end = time.perf_counter() + seconds

    def left(self) -> float:
        return self.end - time.perf_counter()


def device_description() -> dict:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    names = []
    for gpu in gpus:
        try:
            names.append(tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name))
        except Exception:  # noqa: BLE001 - details are informative only
            names.append(gpu.name)
    return {"gpus": names, "gpu_count": len(gpus), "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(), "tensorflow": tf.__version__,
            "keras": __import__("keras").__version__, "host": platform.node()}


def _compiled_pair(settings: dict, xla: bool):
    import keras

    import effscale

    size = settings["resolution"]
    models = {
        "effscale": effscale.build("efficientnet-b0", "b0", classes=settings["classes"], input_shape=(size, size, 3)),
        "keras": keras.applications.EfficientNetB0(weights=None, classes=settings["classes"],
                                                   input_shape=(size, size, 3)),
    }
    for model in models.values():  # the identical recipe on both sides
        model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss="sparse_categorical_crossentropy",
                      jit_compile=xla, run_eagerly=settings["eager"])
    return models


def measure_training(settings: dict, budget: Budget) -> list[dict]:
    """Alternating rounds of training steps of both models, per (batch, XLA) setting."""
    import keras
    import tensorflow as tf

    rows = []
    keras.config.set_dtype_policy(settings["policy"])
    try:
        for xla in settings["xla"]:
            for batch in settings["batches"]:
                if budget.left() < 60 and rows:
                    rows.append({"batch": batch, "xla": xla, "skipped": "time budget"})
                    continue
                keras.backend.clear_session()
                size = settings["resolution"]
                images = tf.random.uniform((batch, size, size, 3), 0, 255, seed=1)  # on the device
                labels = tf.random.uniform((batch,), 0, settings["classes"], dtype=tf.int32, seed=2)
                models = _compiled_pair(settings, xla)
                compile_seconds = {}
                for side, model in models.items():  # trace (and XLA-compile) each step once
                    start = time.perf_counter()
                    model.train_on_batch(images, labels)
                    compile_seconds[side] = time.perf_counter() - start
                speeds = {side: [] for side in models}
                for _ in range(settings["rounds"]):
                    for side, model in models.items():
                        start = time.perf_counter()
                        for _ in range(settings["steps"]):
                            logs = model.train_on_batch(images, labels, return_dict=True)
                        speeds[side].append(settings["steps"] * batch / (time.perf_counter() - start))
                median = {side: statistics.median(values) for side, values in speeds.items()}
                rows.append({"batch": batch, "xla": xla, "effscale_images_per_second": median["effscale"],
                             "keras_images_per_second": median["keras"],
                             "ratio": median["effscale"] / median["keras"],
                             "rounds": {side: values for side, values in speeds.items()},
                             "first_step_seconds": compile_seconds, "final_loss": float(logs["loss"])})
    finally:
        keras.config.set_dtype_policy("float32")
        keras.backend.clear_session()
    return rows


def write_image_folder(path: str, images: int, size: int, classes: int = 10) -> str:
    """``images`` random JPEG files of ``size`` px in ``classes`` sub-folders (a typical folder dataset)."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    for index in range(images):
        folder = os.path.join(path, f"class{index % classes}")
        os.makedirs(folder, exist_ok=True)
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        tf.io.write_file(os.path.join(folder, f"{index:05d}.jpg"), tf.io.encode_jpeg(pixels, quality=90))
    return path


def _pipeline_speed(dataset, batches: int, batch: int) -> dict:
    iterator = iter(dataset.repeat())
    next(iterator)  # start the workers (and, with caching, fill nothing yet)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return {"images_per_second": batches * batch / (time.perf_counter() - start), "batches": batches}


def measure_pipeline(settings: dict, training_rows: list[dict], budget: Budget, work_dir: str) -> dict:
    """effscale's tf.data pipeline alone, from memory and from an image folder, against the step."""
    from effscale.data.pipeline import DataSpec, load_data

    batch = settings["batches"][-1]
    size = settings["resolution"]
    result = {"batch": batch, "resolution": size}
    memory = load_data(DataSpec("digits", resolution=size), batch_size=batch, augment=True, drop_remainder=True)
    for _ in memory.train:  # one pass fills the cache: what every later epoch reads
        pass
    result["memory"] = _pipeline_speed(memory.train, settings["pipeline_batches"], batch)
    if budget.left() > 30:
        start = time.perf_counter()
        folder = write_image_folder(os.path.join(work_dir, "images"), settings["folder_images"],
                                    settings["folder_source_size"], settings["folder_classes"])
        result["folder_written_seconds"] = time.perf_counter() - start
        from_folder = load_data(DataSpec(folder, resolution=size), batch_size=batch, augment=True,
                                drop_remainder=True, cache=False)
        result["folder"] = _pipeline_speed(from_folder.train, settings["pipeline_batches"], batch)
        result["folder"]["images"] = settings["folder_images"]
        result["folder"]["source_size"] = settings["folder_source_size"]
    else:
        result["folder"] = {"skipped": "time budget"}
    measured = [r for r in training_rows if "effscale_images_per_second" in r]
    if measured:
        step = max(measured, key=lambda r: r["effscale_images_per_second"])
        result["step_images_per_second"] = step["effscale_images_per_second"]
        result["step_setting"] = {"batch": step["batch"], "xla": step["xla"]}
        for key in ("memory", "folder"):
            if "images_per_second" in result[key]:
                result[key]["step_ratio"] = result[key]["images_per_second"] / step["effscale_images_per_second"]
    return result


def measure_mirrored(settings: dict, xla: bool) -> dict:
    import keras
    import tensorflow as tf

    import effscale
    from effscale.training.strategy import resolve_strategy

    strategy = resolve_strategy("mirrored")
    replicas = strategy.num_replicas_in_sync
    batch = settings["mirrored_per_replica"] * replicas
    size = settings["resolution"]
    keras.backend.clear_session()
    keras.config.set_dtype_policy(settings["policy"])
    try:
        with strategy.scope():
            model = effscale.build("efficientnet-b0", "b0", classes=settings["classes"], input_shape=(size, size, 3))
            model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss="sparse_categorical_crossentropy",
                          jit_compile=xla, run_eagerly=settings["eager"])
        images = tf.random.uniform((batch, size, size, 3), 0, 255, seed=3)
        labels = tf.random.uniform((batch,), 0, settings["classes"], dtype=tf.int32, seed=4)
        model.train_on_batch(images, labels)
        speeds = []
        for _ in range(settings["rounds"]):
            start = time.perf_counter()
            for _ in range(settings["steps"]):
                model.train_on_batch(images, labels)
            speeds.append(settings["steps"] * batch / (time.perf_counter() - start))
    finally:
        keras.config.set_dtype_policy("float32")
    speed = statistics.median(speeds)
    return {"replicas": replicas, "devices": list(strategy.extended.worker_devices), "global_batch": batch,
            "xla": xla, "images_per_second": speed, "images_per_second_per_replica": speed / replicas}


def measure_custom_loop(settings: dict, work_dir: str) -> dict:
    """The custom loop with float16 (LossScaleOptimizer): finite loss, the scale it settled on."""
    from effscale.training.recipe import Recipe
    from effscale.training.strategy import Execution
    from effscale.training.train import train_variant

    start = time.perf_counter()
    record = train_variant("tiny", "w=0.25,d=0.25,r=16", data="digits",
                           recipe=Recipe(epochs=settings["custom_loop_epochs"], batch_size=64, batch_scope="global"),
                           strategy=Execution("auto", mixed_precision="float16", loop="custom"),
                           out_dir=os.path.join(work_dir, "custom-loop"), verbose=0, latency_runs=0)
    checkpoint = glob.glob(os.path.join(work_dir, "custom-loop", "checkpoint", "*.weights.h5"))
    return {"mixed_precision": record["mixed_precision"], "loop": record["strategy"]["loop"],
            "test_top1": record["test_top1"], "train_losses": [epoch["train_loss"] for epoch in record["history"]],
            **loss_scale_state(checkpoint[0]), "seconds": time.perf_counter() - start}


def loss_scale_state(weights_file: str) -> dict:
    """Whether a checkpoint's optimizer is a LossScaleOptimizer, and its dynamic loss scale.

    Keras stores optimizer variables by position; the position of ``dynamic_scale`` is read
    from a fresh LossScaleOptimizer rather than assumed.
    """
    import h5py
    import keras

    probe = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD())
    probe.build([keras.Variable(0.0)])
    index = [v.path.split("/")[-1] for v in probe.variables].index("dynamic_scale")
    with h5py.File(weights_file, "r") as handle:
        optimizer = handle["optimizer"]
        wrapped = "inner_optimizer" in optimizer
        scale = float(optimizer["vars"][str(index)][()]) if wrapped else None
    return {"loss_scale_optimizer": wrapped, "dynamic_loss_scale": scale}


def measure_family(settings: dict, work_dir: str) -> dict:
    from effscale.family.pipeline import run_family

    start = time.perf_counter()
    results = run_family({"dataset": "digits", "baseline": "tiny", **settings["family"]},
                         os.path.join(work_dir, "family"), verbose=0)
    members = [{"name": v["name"], "test_top1": v.get("test_top1"), "train_seconds": v.get("train_seconds"),
                "images_per_second": v.get("images_per_second")} for v in results["variants"]]
    return {"seconds": time.perf_counter() - start, "members": members}


def markdown(record: dict) -> str:
    device = record["device"]
    lines = [f"Device: {', '.join(device['gpus']) or 'CPU only (smoke mode)'}; TensorFlow {device['tensorflow']}, "
             f"Keras {device['keras']}; mode {record['mode']}; {record['date']}; wall {record['wall_seconds']:.0f} s.", "",
             "| batch | XLA | effscale images/s | keras.applications images/s | effscale / keras | "
             "effscale / NVIDIA A100 figure |", "|---|---|---|---|---|---|"]
    for row in record["training"]:
        if "skipped" in row:
            lines.append(f"| {row['batch']} | {'on' if row['xla'] else 'off'} | skipped ({row['skipped']}) | | | |")
            continue
        lines.append(f"| {row['batch']} | {'on' if row['xla'] else 'off'} | {row['effscale_images_per_second']:,.0f} | "
                     f"{row['keras_images_per_second']:,.0f} | {row['ratio']:.3f} | "
                     f"{row['effscale_images_per_second'] / NVIDIA_A100_B0_AMP_IMAGES_PER_SECOND:.2f} |")
    pipeline = record.get("pipeline") or {}
    if pipeline:
        lines += ["", "| input pipeline (batch {}, {} px) | images/s | / training step |".format(
            pipeline["batch"], pipeline["resolution"]), "|---|---|---|"]
        for key, label in (("memory", "from memory (cached)"), ("folder", "from a JPEG folder (decoded)")):
            part = pipeline.get(key, {})
            if "images_per_second" in part:
                ratio = part.get("step_ratio")
                lines.append(f"| {label} | {part['images_per_second']:,.0f} | "
                             + (f"{ratio:.2f} |" if ratio is not None else "|"))
            else:
                lines.append(f"| {label} | skipped ({part.get('skipped', 'not run')}) | |")
    for key in ("mirrored", "custom_loop", "family"):
        part = record.get(key)
        if isinstance(part, dict) and "skipped" in part:
            lines.append(f"\n{key}: skipped ({part['skipped']})")
        elif key == "mirrored" and part:
            lines.append(f"\nMirroredStrategy over {part['replicas']} replica(s), global batch {part['global_batch']}: "
                         f"{part['images_per_second']:,.0f} images/s ({part['images_per_second_per_replica']:,.0f} "
                         "per replica).")
        elif key == "custom_loop" and part:
            lines.append(f"\nCustom loop, {part['mixed_precision']}: training loss per epoch "
                         f"{', '.join(f'{v:.3f}' for v in part['train_losses'])}, dynamic loss scale "
                         f"{part['dynamic_loss_scale']}, test top-1 {part['test_top1']:.3f}.")
        elif key == "family" and part:
            lines.append(f"\nTiny family end to end: {part['seconds']:.0f} s; " + ", ".join(
                f"{m['name']} test top-1 {m['test_top1']:.3f}" for m in part["members"] if m["test_top1"] is not None)
                + ".")
    return "\n".join(lines) + "\n"


def run(out: str, smoke: bool | None = None, budget_seconds: float = 450.0) -> dict:
    import tensorflow as tf

    wall = time.perf_counter()
    gpus = tf.config.list_physical_devices("GPU")
    smoke = (not gpus) if smoke is None else smoke
    settings = SMOKE if smoke else FULL
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    budget = Budget(budget_seconds)
    os.makedirs(out, exist_ok=True)
    record = {"mode": "smoke" if smoke else "full", "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
              "command": " ".join([os.path.basename(sys.executable), *sys.argv]), "device": device_description(),
              "settings": {k: v for k, v in settings.items() if k != "family"},
              "nvidia_a100_b0_amp_images_per_second": NVIDIA_A100_B0_AMP_IMAGES_PER_SECOND}
    with tempfile.TemporaryDirectory(prefix="effscale-accelerator-") as work_dir:
        record["training"] = measure_training(settings, budget)
        record["pipeline"] = measure_pipeline(settings, record["training"], budget, work_dir)
        faster_xla = _faster_xla(record["training"])
        parts = (("mirrored", lambda: measure_mirrored(settings, faster_xla), 40),
                 ("custom_loop", lambda: measure_custom_loop(settings, work_dir), 30),
                 ("family", lambda: measure_family(settings, work_dir), 90))
        for name, measure, needs in parts:
            record[name] = measure() if (smoke or budget.left() > needs) else {"skipped": "time budget"}
    record["wall_seconds"] = time.perf_counter() - wall
    from effscale.common.io import write_json, write_text

    write_json(os.path.join(out, "accelerator.json"), record)
    write_text(os.path.join(out, "accelerator.md"), markdown(record))
    return record


def _faster_xla(rows: list[dict]) -> bool:
    """Whether XLA was faster for effscale's model at the largest batch measured both ways."""
    measured = [r for r in rows if "effscale_images_per_second" in r]
    by_setting = {(r["batch"], r["xla"]): r["effscale_images_per_second"] for r in measured}
    for batch in sorted({r["batch"] for r in measured}, reverse=True):
        if (batch, True) in by_setting and (batch, False) in by_setting:
            return by_setting[(batch, True)] > by_setting[(batch, False)]
    return False


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/accelerator", help="folder for accelerator.json and accelerator.md")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (the default without a GPU)")
    parser.add_argument("--budget", type=float, default=450.0, help="seconds; later parts are skipped past it")
    args = parser.parse_args(argv)
    from effscale.common.console import quiet_tensorflow

    quiet_tensorflow()
    record = run(args.out, smoke=True if args.smoke else None, budget_seconds=args.budget)
    print(markdown(record))
    print(f"wrote {os.path.join(args.out, 'accelerator.json')} and accelerator.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
