"""``effscale finetune`` and ``effscale export``.

    effscale finetune efficientnet-b0 --variant b0 --dataset tfds:tf_flowers --weights imagenet:b0 --out runs/flowers
    effscale finetune runs/tiny --dataset path/to/images --unfreeze 2 --out runs/tiny-images
    effscale export runs/flowers --format tflite --quantize int8

Bad input (an unknown genotype or dataset, a missing weights file, int8 without training data,
an output folder that already holds a result) is one line on stderr and exit code 2, and
nothing is written.
"""

from __future__ import annotations

import json
import os

from effscale.errors import UserError


def _quiet() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _config(args):
    from effscale.finetune import FineTuneConfig

    config = FineTuneConfig()
    if args.config:
        if not os.path.isfile(args.config):
            raise UserError(f"--config {args.config!r} does not exist")
        with open(args.config) as handle:
            config = FineTuneConfig.from_json(handle.read())
    changes = {field: getattr(args, field) for field in (
        "head_epochs", "epochs", "learning_rate", "head_learning_rate", "unfreeze", "resolution", "batch_size",
        "steps_per_epoch", "seed") if getattr(args, field) is not None}
    if args.gradual:
        changes["gradual"] = True
    if args.no_augment:
        changes["augment"] = False
    return config.replace(**changes) if changes else config


def cmd_finetune(args) -> int:
    from effscale.genotype import load_genotype
    from effscale.scaling import resolve_variant

    config = _config(args)
    base = args.base
    if not (os.path.isdir(base) or base.endswith(".keras")):  # a genotype: check it before TensorFlow loads
        resolve_variant(args.variant, load_genotype(base))
    if args.weights and not args.weights.startswith("imagenet") and not os.path.exists(args.weights):
        raise UserError(f"--weights {args.weights!r} does not exist (keras caches ImageNet files under "
                        "~/.keras/models/; effscale never downloads)")
    if os.path.isfile(os.path.join(args.out, "finetune.json")):
        raise UserError(f"--out {args.out!r} already holds a fine-tuned model; use a new folder")
    _quiet()
    from effscale.finetune import finetune, summary

    record = finetune(base, args.variant, args.dataset, config, weights=args.weights, out_dir=args.out,
                      data_dir=args.data_dir, download=args.download, verbose=args.verbose)
    record.pop("_model", None)
    if args.json:
        print(json.dumps({k: v for k, v in record.items() if k != "history"}, indent=2, sort_keys=True))
        return 0
    if record["transfer"] is not None:
        from effscale.weights import TransferReport

        transfer = TransferReport(**{k: v for k, v in record["transfer"].items() if k != "shapes"})
        print(f"weights from {transfer.source}: {transfer.summary()}")
    print(f"{args.out}: {summary(record)}")
    return 0


def _model_path(model: str) -> str:
    path = os.path.join(model, "model.keras") if os.path.isdir(model) else model
    if not os.path.isfile(path) or not path.endswith(".keras"):
        raise UserError(f"{model!r} is not a .keras file or a folder with model.keras")
    return path


def _recorded_data(folder: str) -> tuple[str | None, str | None]:
    from effscale.io import read_json

    for name in ("finetune.json", "results.json"):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            data = read_json(path).get("data") or {}
            if data.get("source"):
                return data["source"], data.get("data_dir")
    return None, None


def cmd_export(args) -> int:
    from effscale.export import EXTENSIONS, check_request

    path = _model_path(args.model)
    folder = os.path.dirname(os.path.abspath(path))
    dataset, data_dir = args.dataset, args.data_dir
    if dataset is None:
        dataset, recorded_dir = _recorded_data(folder)
        data_dir = data_dir or recorded_dir
    check_request(args.format, args.quantize, dataset)
    suffix = f"-{args.quantize}" if args.quantize else ""
    default = {"keras": "model-export.keras", "savedmodel": "savedmodel", "tflite": f"model{suffix}.tflite"}
    out = args.out or os.path.join(folder, default[args.format])
    if args.format != "savedmodel" and not out.endswith(EXTENSIONS[args.format]):
        raise UserError(f"--out {out!r}: expected a path ending in {EXTENSIONS[args.format]} for --format {args.format}")
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
        raise UserError(f"--out {out!r}: folder {parent!r} does not exist or is not writable")
    if args.samples < 1:
        raise UserError(f"--samples must be >= 1, got {args.samples}")
    _quiet()
    import keras

    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as error:
        raise UserError(f"{path!r} does not load as a Keras model: {str(error).strip().splitlines()[0]}") from None
    sample = representative = None
    if dataset is not None:
        from effscale.data import load_data

        splits = load_data(dataset, resolution=int(model.input_shape[1]), batch_size=32, data_dir=data_dir,
                           cache=False)
        sample = _take(splits.validation, args.samples)
        representative = _take(splits.train, args.calibration) if args.quantize == "int8" else None
    from effscale.export import export_model, summary
    from effscale.io import write_json

    report = export_model(model, out, args.format, args.quantize, sample=sample, representative=representative,
                          latency_runs=args.latency_runs)
    report["dataset"] = dataset
    if args.quantize == "int8":
        report["calibration"] = f"{report['calibration_images']} training images of {dataset}"
    write_json(out + ".json", report)
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        print(summary(report) + (f" (Keras {1000 * report['keras_latency_seconds']:.3f} ms)"
                                 if report.get("keras_latency_seconds") else "")
              + (f"; int8 calibrated on {report['calibration']}" if args.quantize == "int8" else ""))
    return 0


def _take(dataset, count: int):
    import numpy as np

    batches, seen = [], 0
    for images, _ in dataset:
        batches.append(images.numpy())
        seen += len(batches[-1])
        if seen >= count:
            break
    return np.concatenate(batches)[:count]


def register(commands) -> None:
    """Add ``finetune`` and ``export`` to the ``effscale`` sub-commands."""
    from effscale.data import SOURCES_HELP

    finetune = commands.add_parser("finetune", help="fine-tune a genotype or a trained model on new data (2 phases)")
    finetune.add_argument("base", help="genotype (name, string or JSON file), a .keras model or a training output folder")
    finetune.add_argument("--variant", default="b0", help="for a genotype: b0..b8, l2, phi=X, w=..,d=..,r=..")
    finetune.add_argument("--dataset", required=True, help=SOURCES_HELP)
    finetune.add_argument("--data-dir", help="tensorflow-datasets data_dir")
    finetune.add_argument("--download", action="store_true", help="let tensorflow-datasets download and prepare")
    finetune.add_argument("--weights", help="imagenet:bN (keras' cache), a .keras/.weights.h5/.h5 file")
    finetune.add_argument("--config", help="FineTuneConfig JSON file; the flags below override it")
    finetune.add_argument("--unfreeze", type=int, help="top stages trained in phase 2 (-1: all)")
    finetune.add_argument("--gradual", action="store_true", help="unfreeze one more stage per phase-2 epoch")
    finetune.add_argument("--head-epochs", type=int)
    finetune.add_argument("--epochs", type=int, help="phase-2 epochs")
    finetune.add_argument("--head-learning-rate", type=float)
    finetune.add_argument("--learning-rate", type=float, help="phase-2 learning rate")
    finetune.add_argument("--resolution", type=int)
    finetune.add_argument("--batch-size", type=int)
    finetune.add_argument("--steps-per-epoch", type=int)
    finetune.add_argument("--no-augment", action="store_true")
    finetune.add_argument("--seed", type=int)
    finetune.add_argument("--verbose", type=int, default=0, choices=(0, 1, 2))
    finetune.add_argument("--json", action="store_true")
    finetune.add_argument("--out", required=True, help="output folder: model.keras, finetune.json")
    finetune.set_defaults(func=cmd_finetune)

    export = commands.add_parser("export", help="export a model (keras, SavedModel, TFLite) and check it")
    export.add_argument("model", help="a .keras file or a folder with model.keras")
    export.add_argument("--format", required=True, choices=("keras", "savedmodel", "tflite"))
    export.add_argument("--quantize", choices=("dynamic", "float16", "int8"), help="TFLite only")
    export.add_argument("--out", help="default: beside the model")
    export.add_argument("--dataset", help="sample and int8 calibration data (default: the model's recorded dataset)")
    export.add_argument("--data-dir")
    export.add_argument("--samples", type=int, default=64, help="validation images to compare on")
    export.add_argument("--calibration", type=int, default=100, help="training images calibrating int8")
    export.add_argument("--latency-runs", type=int, default=20)
    export.add_argument("--json", action="store_true")
    export.set_defaults(func=cmd_export)
