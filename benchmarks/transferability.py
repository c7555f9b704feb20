"""Transferability: fine-tune every member of one family on several datasets; one table of
validation top-1 per member per dataset.

    .venv/bin/python benchmarks/transferability.py --family "w=0.25,d=0.5,r=16;w=0.5,d=0.5,r=16" --out runs/transfer

Runs offline on small local data written by the script: each member is first trained on a
source task (handwritten digits 0-6, scikit-learn's bundled scans, as PNG files), then
fine-tuned with effscale.training.finetune (head phase, then the top 2 stages) on each target:

* ``digits7-9``: PNGs of the digits the source never saw (new classes, same domain);
* ``shapes``: PNGs of circles, crosses and squares drawn with random colours, sizes and places;
* ``photo-patches``: 32x32 patches cut from scikit-learn's two bundled photographs (china.jpg,
  flower.jpg), labelled by photo: real photo texture, a different domain.

Any other dataset effscale reads works too: ``--datasets tfds:tf_flowers,path/to/images``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def write_digits(root, digits, per_class=None):
    from PIL import Image
    from sklearn.datasets import load_digits

    bunch = load_digits()
    for digit in digits:
        os.makedirs(os.path.join(root, str(digit)), exist_ok=True)
        for i in np.flatnonzero(bunch.target == digit)[:per_class]:
            Image.fromarray((bunch.images[i] * 255 / 16).astype("uint8"), mode="L").save(
                os.path.join(root, str(digit), f"{i:04d}.png"))


def write_shapes(root, per_class=60, size=28, seed=0):
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    for shape in ("circle", "cross", "square"):
        os.makedirs(os.path.join(root, shape), exist_ok=True)
        for i in range(per_class):
            background = tuple(int(v) for v in rng.integers(0, 100, 3))
            colour = tuple(int(v) for v in rng.integers(150, 256, 3))
            image = Image.new("RGB", (size, size), background)
            draw = ImageDraw.Draw(image)
            r = int(rng.integers(6, 11))
            cx, cy = (int(v) for v in rng.integers(r + 1, size - r - 1, 2))
            box, width = [cx - r, cy - r, cx + r, cy + r], int(rng.integers(2, 4))
            if shape == "circle":
                draw.ellipse(box, outline=colour, width=width)
            elif shape == "square":
                draw.rectangle(box, outline=colour, width=width)
            else:
                draw.line(box, fill=colour, width=width)
                draw.line([box[0], box[3], box[2], box[1]], fill=colour, width=width)
            image.save(os.path.join(root, shape, f"{i:03d}.png"))


def write_photo_patches(root, per_class=60, size=32, seed=0):
    from PIL import Image
    from sklearn.datasets import load_sample_images

    rng = np.random.default_rng(seed)
    bunch = load_sample_images()
    for name, photo in zip(bunch.filenames, bunch.images):
        label = os.path.splitext(os.path.basename(name))[0]
        os.makedirs(os.path.join(root, label), exist_ok=True)
        for i in range(per_class):
            y, x = rng.integers(0, photo.shape[0] - size), rng.integers(0, photo.shape[1] - size)
            Image.fromarray(photo[y:y + size, x:x + size]).save(os.path.join(root, label, f"{i:03d}.png"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--genotype", default="tiny")
    parser.add_argument("--family", default="w=0.25,d=0.5,r=16;w=0.5,d=0.5,r=16")
    parser.add_argument("--datasets", default="digits7-9,shapes,photo-patches")
    parser.add_argument("--source-epochs", type=int, default=3)
    parser.add_argument("--head-epochs", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--out", default="runs/transferability")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from effscale.training.finetune import FineTuneConfig, finetune
    from effscale.model.zoo import load_genotype
    from effscale.model.variants import resolve_family
    from effscale.training.recipe import Recipe
    from effscale.training.train import train_variant

    genotype = load_genotype(args.genotype)
    members = resolve_family(args.family, genotype)
    data = os.path.join(args.out, "data")
    builtin = {"digits7-9": lambda root: write_digits(root, [7, 8, 9], 60), "shapes": write_shapes,
               "photo-patches": write_photo_patches}
    targets = {}
    for name in args.datasets.split(","):
        if name in builtin:
            root = os.path.join(data, name)
            if not os.path.isdir(root):
                builtin[name](root)
            targets[name] = root
        else:
            targets[name] = name
    source = os.path.join(data, "digits0-6")
    if not os.path.isdir(source):
        write_digits(source, range(7))

    config = FineTuneConfig(head_epochs=args.head_epochs, epochs=args.epochs, head_learning_rate=3e-3,
                            learning_rate=1e-3, unfreeze=2, batch_size=16, augment=False)
    rows = []
    for member in members:
        start = time.perf_counter()
        source_dir = os.path.join(args.out, "source", member.name)
        record = train_variant(genotype, member, data=source, recipe=Recipe(epochs=args.source_epochs, batch_size=64),
                               strategy="default", out_dir=source_dir, verbose=0, latency_runs=0)
        row = {"member": member.name, "source_top1": record["test_top1"], "params": record["params"]}
        for name, dataset in targets.items():
            result = finetune(source_dir, data=dataset, config=config)
            row[name] = {"head": result["phases"][0]["validation"]["top1"], "finetuned": result["validation_top1"],
                         "validation_images": result["data"]["validation_size"]}
        row["seconds"] = round(time.perf_counter() - start, 1)
        rows.append(row)
        print(json.dumps(row), flush=True)

    lines = ["| member | params | source (digits 0-6) | " + " | ".join(targets) + " |",
             "|---|---|---|" + "---|" * len(targets)]
    for row in rows:
        cells = [f"{row[n]['head']:.3f} -> {row[n]['finetuned']:.3f}" for n in targets]
        lines.append(f"| {row['member']} | {row['params']:,} | {row['source_top1']:.3f} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print("\nvalidation top-1, head phase -> after fine-tuning the top 2 stages\n" + table)
    from effscale.common.io import write_json, write_text

    os.makedirs(args.out, exist_ok=True)
    write_json(os.path.join(args.out, "transferability.json"), rows)
    write_text(os.path.join(args.out, "transferability.md"), table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
