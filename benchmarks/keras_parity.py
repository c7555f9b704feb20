"""Throughput and memory of effscale's EfficientNets against keras.applications, in one process.

For each variant, both models are built with the same input size; inference (compiled
``predict_on_batch``) and training (``train_on_batch``, SGD) are timed in alternating rounds,
and the median images/s of each side and their ratio are printed. Peak resident memory of
building B7 and running one training step is measured in a fresh subprocess per side.

    .venv/bin/python benchmarks/keras_parity.py [--variants b0,b1,b3] [--rounds 5] [--batch 8]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def build_pair(name: str):
    import keras

    import effscale

    ours = effscale.build("efficientnet-b0", name)
    theirs = getattr(keras.applications, f"EfficientNetB{name[1]}")(weights=None)
    for model in (ours, theirs):
        model.compile(optimizer=keras.optimizers.SGD(0.01), loss="sparse_categorical_crossentropy",
                      jit_compile=False)
    return ours, theirs


def timed(function, images) -> float:
    start = time.perf_counter()
    function()
    return images / (time.perf_counter() - start)


def measure_variant(name: str, rounds: int, batch: int) -> dict:
    import numpy as np

    ours, theirs = build_pair(name)
    size = ours.input_shape[1]
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (batch, size, size, 3)).astype("float32")
    labels = rng.integers(0, 1000, batch)
    speeds = {("ours", "infer"): [], ("keras", "infer"): [], ("ours", "train"): [], ("keras", "train"): []}
    for model in (ours, theirs):  # warm up: trace and compile both functions once
        model.predict_on_batch(images)
        model.train_on_batch(images, labels)
    for _ in range(rounds):
        for side, model in (("ours", ours), ("keras", theirs)):
            speeds[(side, "infer")].append(timed(lambda: model.predict_on_batch(images), batch))
            speeds[(side, "train")].append(timed(lambda: model.train_on_batch(images, labels), batch))
    medians = {key: statistics.median(values) for key, values in speeds.items()}
    return {"variant": name, "resolution": size, **{f"{s}_{k}": v for (s, k), v in medians.items()}}


MEMORY_SCRIPT = """
import os, resource, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np, keras
side = sys.argv[1]
if side == "ours":
    import effscale
    model = effscale.build("efficientnet-b0", "b7")
else:
    model = keras.applications.EfficientNetB7(weights=None)
model.compile(optimizer=keras.optimizers.SGD(0.01), loss="sparse_categorical_crossentropy", jit_compile=False)
model.train_on_batch(np.zeros((1, 600, 600, 3), "float32"), np.zeros((1,), "int64"))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def peak_memory_mb(side: str) -> float:
    done = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, side], capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default="b0,b1,b3")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    start = time.time()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
          f"batch {args.batch}, median of {args.rounds} alternating rounds")
    print("| variant | px | infer img/s effscale | infer img/s keras | ratio | train img/s effscale "
          "| train img/s keras | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    import keras

    for name in args.variants.split(","):
        r = measure_variant(name, args.rounds, args.batch)
        print(f"| {name} | {r['resolution']} | {r['ours_infer']:.1f} | {r['keras_infer']:.1f} | "
              f"{r['ours_infer'] / r['keras_infer']:.3f} | {r['ours_train']:.2f} | {r['keras_train']:.2f} | "
              f"{r['ours_train'] / r['keras_train']:.3f} |", flush=True)
        keras.backend.clear_session()
    if not args.skip_memory:
        ours, theirs = peak_memory_mb("ours"), peak_memory_mb("keras")
        print(f"\nB7 build + one training step (batch 1, 600 px), peak RSS: effscale {ours:,.0f} MB, "
              f"keras {theirs:,.0f} MB, ratio {ours / theirs:.3f}")
    print(f"\ntotal {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
