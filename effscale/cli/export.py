"""``effscale export``.

    effscale export runs/flowers --format tflite --quantize int8

Bad input (an unknown format, int8 without training data, an output path of the wrong kind) is
one line on stderr and exit code 2, and nothing is written.
"""

from __future__ import annotations

import json
import os

from effscale.common.errors import UserError


def _quiet() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _model_path(model: str) -> str:
    path = os.path.join(model, "model.keras") if os.path.isdir(model) else model
    if not os.path.isfile(path) or not path.endswith(".keras"):
        raise UserError(f"{model!r} is not a .keras file or a folder with model.keras")
    return path


def _recorded_data(folder: str) -> tuple[str | None, str | None]:
    from effscale.common.migrations import read_state

    for name, kind in (("finetune.json", "fine-tuning"), ("results.json", "training results")):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            data = read_state(path, kind).get("data") or {}
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
    from effscale.model.keras_file import load_keras_model

    model = load_keras_model(path)
    sample = representative = None
    if dataset is not None:
        from effscale.data.pipeline import DataSpec, load_data

        splits = load_data(DataSpec(dataset, data_dir=data_dir, resolution=int(model.input_shape[1])), batch_size=32,
                           cache=False)
        sample = _take(splits.validation, args.samples)
        representative = _take(splits.train, args.calibration) if args.quantize == "int8" else None
    from effscale.export import export_model, summary
    from effscale.common.migrations import write_state

    report = export_model(model, out, args.format, args.quantize, sample=sample, representative=representative,
                          latency_runs=args.latency_runs)
    report["dataset"] = dataset
    if args.quantize == "int8":
        report["calibration"] = f"{report['calibration_images']} training images of {dataset}"
    write_state(out + ".json", report)
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
    """Add ``export`` to the ``effscale`` sub-commands."""

    export = commands.add_parser("export", help="export a model (keras, SavedModel, TFLite) and check it")
    from effscale.common.checks import COUNT_MAX, int_flag

    export.add_argument("model", help="a .keras file or a folder with model.keras")
    export.add_argument("--format", required=True, choices=("keras", "savedmodel", "tflite"))
    export.add_argument("--quantize", choices=("dynamic", "float16", "int8"), help="TFLite only")
    export.add_argument("--out", help="default: beside the model")
    export.add_argument("--dataset", help="sample and int8 calibration data (default: the model's recorded dataset)")
    export.add_argument("--data-dir")
    export.add_argument("--samples", type=int_flag(1, COUNT_MAX), default=64, help="validation images to compare on")
    export.add_argument("--calibration", type=int_flag(1, COUNT_MAX), default=100, help="training images calibrating int8")
    export.add_argument("--latency-runs", type=int_flag(0, COUNT_MAX), default=20)
    export.add_argument("--json", action="store_true")
    export.set_defaults(func=cmd_export)
