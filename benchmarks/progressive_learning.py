"""Time to a target test accuracy with and without progressive learning (EfficientNetV2).

Trains the same variant with the same recipe twice on a stratified subset of Fashion-MNIST
(installed IDX files; nothing is downloaded): once at the full image size with fixed
regularization, once with progressive learning (image size and regularization growing over
the stages). After every epoch a Keras callback measures top-1 on the official test images
(t10k subset) at the image size the model trains at in that epoch, and notes the wall time
since the run started, its own evaluation time excluded. Prints a Markdown table and writes
the raw curves as JSON.

    .venv/bin/python benchmarks/progressive_learning.py [--train 6000 --test 2000 --epochs 8]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402


def subset_folder(train: int, test: int, seed: int) -> str:
    """Write stratified train/test subsets of the installed Fashion-MNIST as an IDX folder."""
    from sklearn.model_selection import train_test_split

    from effscale.data.idx import read_installed, write_idx

    (images, labels), (test_images, test_labels), _ = read_installed("fashion_mnist")
    folder = tempfile.mkdtemp(prefix="fashion-subset-")
    for prefix, x, y, n in (("train", images, labels, train), ("t10k", test_images, test_labels, test)):
        keep, _ = train_test_split(np.arange(len(y)), train_size=n, stratify=y, random_state=seed)
        keep = np.sort(keep)
        write_idx(os.path.join(folder, f"{prefix}-images-idx3-ubyte.gz"), x[keep])
        write_idx(os.path.join(folder, f"{prefix}-labels-idx1-ubyte.gz"), y[keep])
    return folder


def test_accuracy_callback(source: str, start: float):
    """A Keras callback that records (wall seconds, test top-1) after each epoch."""
    import keras

    from effscale.data.pipeline import DataSpec, load_data
    from effscale.training.evaluate import evaluate_dataset

    class TestAccuracy(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.points, self.eval_seconds, self.test_sets = [], 0.0, {}

        def on_epoch_end(self, epoch, logs=None):
            now = time.perf_counter()
            size = int(self.model.input_shape[1])
            if size not in self.test_sets:
                self.test_sets[size] = load_data(DataSpec(source, resolution=size), batch_size=256)
            splits = self.test_sets[size]
            top1 = evaluate_dataset(self.model, splits.test, splits.num_classes)["top1"]
            self.points.append({"epoch": epoch + 1, "seconds": round(now - start - self.eval_seconds, 2),
                                "resolution": size, "test_top1": round(float(top1), 4)})
            self.eval_seconds += time.perf_counter() - now
            print(f"  epoch {epoch + 1}: {size} px, test top-1 {top1:.4f}, {self.points[-1]['seconds']:.0f} s",
                  flush=True)

    return TestAccuracy()


def run(mode: str, args, source: str, out_root: str) -> dict:
    from effscale.training.recipe import Recipe
    from effscale.training.train import train_variant

    progressive = None
    if mode == "progressive":
        progressive = {"stages": args.stages, "resolution": [args.start_resolution, None],
                       "dropout": [args.dropout_start, args.dropout_end]}
    recipe = Recipe(epochs=args.epochs, batch_size=args.batch, batch_scope="global", seed=args.seed,
                    dropout=None if progressive else args.dropout_end, progressive=progressive)
    start = time.perf_counter()
    callback = test_accuracy_callback(source, start)
    print(f"{mode}:", flush=True)
    record = train_variant(args.genotype, args.variant, data=source, recipe=recipe, strategy="default",
                           out_dir=os.path.join(out_root, mode), verbose=0, latency_runs=0, callbacks=[callback])
    wall = time.perf_counter() - start - callback.eval_seconds
    return {"mode": mode, "wall_seconds": round(wall, 1), "curve": callback.points,
            "final_test_top1": callback.points[-1]["test_top1"], "progressive": record.get("progressive"),
            "recipe": recipe.to_dict()}


def time_to(points: list[dict], target: float) -> float | None:
    return next((p["seconds"] for p in points if p["test_top1"] >= target), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--genotype", default="tiny")
    parser.add_argument("--variant", default="w=0.5,d=0.5,r=32")
    parser.add_argument("--train", type=int, default=6000, help="training images (stratified subset)")
    parser.add_argument("--test", type=int, default=2000, help="test images (stratified subset of t10k)")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--stages", type=int, default=4)
    parser.add_argument("--start-resolution", type=int, default=16)
    parser.add_argument("--dropout-start", type=float, default=0.1)
    parser.add_argument("--dropout-end", type=float, default=0.3)
    parser.add_argument("--targets", default="0.70,0.75,0.80,0.85")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=os.path.join(os.path.dirname(__file__), "progressive_learning.json"))
    args = parser.parse_args()

    begin = time.time()
    folder = subset_folder(args.train, args.test, args.seed)
    source = f"idx:{folder}"
    with tempfile.TemporaryDirectory() as out_root:
        results = [run(mode, args, source, out_root) for mode in ("fixed", "progressive")]
    targets = [float(t) for t in args.targets.split(",")]
    rows = []
    for result in results:
        times = [time_to(result["curve"], t) for t in targets]
        rows.append([result["mode"], f"{result['final_test_top1']:.4f}", f"{result['wall_seconds']:.0f}",
                     *["not reached" if t is None else f"{t:.0f}" for t in times]])
    headers = ["run", "final test top-1", "wall s", *[f"s to {t:.2f}" for t in targets]]
    table = "\n".join("| " + " | ".join(row) + " |" for row in [headers, ["---"] * len(headers), *rows])
    print(table)
    meta = {"machine": f"{platform.machine()} / {os.cpu_count()} CPUs", "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "total_seconds": round(time.time() - begin),
            "args": vars(args)}
    from effscale.common.io import write_json

    write_json(args.json, {"meta": meta, "table": table, "runs": results})
    print(f"wrote {args.json} ({meta['total_seconds']} s in all)")


if __name__ == "__main__":
    main()
