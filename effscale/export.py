"""Export a trained model as ``.keras``, a TensorFlow SavedModel or a LiteRT (TFLite)
flatbuffer, and check the export against the Keras model.

:func:`export_model` writes the export atomically, reloads it, runs it on a sample of images
beside the Keras model and reports the top-1 agreement and the largest absolute difference of
the output probabilities, and the export's median single-image CPU latency. TFLite
quantization: ``dynamic`` (int8 weights), ``float16`` (float16 weights) or ``int8`` (int8
weights and activations, calibrated on a representative dataset that must come from the
training data; inputs and outputs stay float32).

>>> import tempfile, os, numpy as np, effscale
>>> model = effscale.build("tiny", "w=0.25,d=0.25,r=16", classes=3)
>>> images = np.random.default_rng(0).uniform(0, 255, (4, 16, 16, 3)).astype("float32")
>>> report = export_model(model, os.path.join(tempfile.mkdtemp(), "m.tflite"), "tflite", sample=images, latency_runs=2)
>>> report["top1_agreement"], report["max_abs_diff"] < 1e-4
(1.0, True)
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time

import numpy as np

from effscale.common.errors import UserError
from effscale.common.io import apply_umask, atomic_path
from effscale.common.migrations import write_state

FORMATS = ("keras", "savedmodel", "tflite")
QUANTIZATIONS = ("dynamic", "float16", "int8")
EXTENSIONS = {"keras": ".keras", "savedmodel": "", "tflite": ".tflite"}


def check_request(format: str, quantize: str | None, representative) -> None:
    """Raise a UserError for a format / quantization combination that cannot work.

    >>> check_request("keras", "int8", None)
    Traceback (most recent call last):
    ...
    effscale.common.errors.UserError: --quantize int8 applies to --format tflite only, not keras
    """
    if format not in FORMATS:
        raise UserError(f"unknown export format {format!r}: expected one of {', '.join(FORMATS)}")
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise UserError(f"unknown quantization {quantize!r}: expected one of {', '.join(QUANTIZATIONS)}")
    if quantize is not None and format != "tflite":
        raise UserError(f"--quantize {quantize} applies to --format tflite only, not {format}")
    if quantize == "int8" and representative is None:
        raise UserError("int8 quantization needs a representative dataset from the training data: pass --dataset "
                        "(or a model folder whose record names its dataset)")


def tflite_flatbuffer(model, quantize: str | None = None, representative=None) -> bytes:
    """The model as a LiteRT flatbuffer (batch 1). ``representative``: an array of training
    images (N, H, W, 3), or an iterable of such batches, used to calibrate ``int8``."""
    import tensorflow as tf

    from effscale.latency import to_litert

    settings = {}
    if quantize is not None:
        settings["optimizations"] = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        settings["target_spec"] = {"supported_types": [tf.float16]}
    if quantize == "int8":
        images = _as_images(representative)

        def calibration():
            for image in images:
                yield [image[None].astype("float32")]

        settings["representative_dataset"] = calibration
        settings["target_spec"] = {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]}
    return to_litert(model, batch_size=1, **settings)


def _as_images(data) -> np.ndarray:
    if data is None:
        raise UserError("no sample images")
    if isinstance(data, np.ndarray):
        return data.astype("float32")
    batches = []
    for item in data:
        images = item[0] if isinstance(item, (tuple, list)) else item
        batches.append(np.asarray(images, dtype="float32"))
    if not batches:
        raise UserError("the sample dataset is empty")
    return np.concatenate(batches)


def _tflite_predict(flatbuffer: bytes, images: np.ndarray) -> np.ndarray:
    from effscale.latency import interpreter

    runner = interpreter(flatbuffer)
    source, target = runner.get_input_details()[0], runner.get_output_details()[0]
    outputs = []
    for image in images:
        runner.set_tensor(source["index"], image[None].astype(source["dtype"]))
        runner.invoke()
        outputs.append(np.array(runner.get_tensor(target["index"])[0], dtype="float32"))
    return np.stack(outputs)


def _median_seconds(call, image, runs: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        call(image)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call(image)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def export_model(model, out: str, format: str = "tflite", quantize: str | None = None, *, sample=None,
                 representative=None, latency_runs: int = 20, threads: int = 1) -> dict:
    """Write ``model`` to ``out`` in ``format`` and return the check: ``top1_agreement``,
    ``max_abs_diff`` (of output probabilities against the Keras model on ``sample``, an array
    of images or a batched dataset), ``latency_seconds`` (median, one image, this CPU),
    ``bytes``. ``representative`` (training images) calibrates int8 quantization. The report is
    also written to ``out + '.json'``."""
    check_request(format, quantize, representative)
    out = os.path.abspath(os.fspath(out))
    parent = os.path.dirname(out)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
        raise UserError(f"--out {out!r}: folder {parent!r} does not exist or is not writable")
    images = _as_images(sample) if sample is not None else np.random.default_rng(0).uniform(
        0, 255, (8, *model.input_shape[1:])).astype("float32")
    expected = np.asarray(model(images, training=False), dtype="float32")
    image = images[:1]
    report = {"format": format, "quantize": quantize, "path": out, "samples": int(len(images)),
              "calibration_images": int(len(_as_images(representative))) if quantize == "int8" else 0,
              "sample_source": "given" if sample is not None else "random pixels"}

    if format == "tflite":
        flatbuffer = tflite_flatbuffer(model, quantize, representative)
        with atomic_path(out) as temporary, open(temporary, "wb") as handle:
            handle.write(flatbuffer)
        got = _tflite_predict(flatbuffer, images)
        if latency_runs:
            from effscale.latency import measure_flatbuffer

            report["latency_seconds"] = measure_flatbuffer(flatbuffer, runs=latency_runs, warmup=2, threads=threads)
        report["bytes"] = len(flatbuffer)
    elif format == "keras":
        import keras

        with atomic_path(out) as temporary:
            model.save(temporary)
        reloaded = keras.saving.load_model(out, compile=False)
        got = np.asarray(reloaded(images, training=False), dtype="float32")
        if latency_runs:
            import tensorflow as tf

            call = tf.function(lambda x: reloaded(x, training=False))
            report["latency_seconds"] = _median_seconds(call, tf.constant(image), latency_runs)
        report["bytes"] = os.path.getsize(out)
    else:
        import tensorflow as tf

        temporary = tempfile.mkdtemp(prefix=".tmp-", dir=parent)
        try:
            model.export(temporary, format="tf_saved_model", verbose=False)
            apply_umask(temporary, directory=True)
            if os.path.exists(out):
                shutil.rmtree(out)
            os.replace(temporary, out)
        finally:
            if os.path.exists(temporary):
                shutil.rmtree(temporary)
        loaded = tf.saved_model.load(out)
        got = np.asarray(loaded.serve(tf.constant(images)), dtype="float32")
        if latency_runs:
            report["latency_seconds"] = _median_seconds(loaded.serve, tf.constant(image), latency_runs)
        report["bytes"] = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(out) for f in fs)

    report["top1_agreement"] = float(np.mean(np.argmax(got, -1) == np.argmax(expected, -1)))
    report["max_abs_diff"] = float(np.abs(got - expected).max())
    if latency_runs:
        import tensorflow as tf

        keras_call = tf.function(lambda x: model(x, training=False))
        report["keras_latency_seconds"] = _median_seconds(keras_call, tf.constant(image), latency_runs)
    write_state(out + ".json", report)
    return report


def summary(report: dict) -> str:
    """One line: what was written, agreement, difference and latency.

    >>> summary({"format": "tflite", "quantize": "int8", "path": "m.tflite", "samples": 4, "top1_agreement": 1.0,
    ...          "max_abs_diff": 0.01, "latency_seconds": 0.002, "bytes": 1000})
    'm.tflite (tflite, int8, 1,000 bytes): top-1 agreement 100.0% on 4 images, max abs diff 0.01, latency 2.000 ms'
    """
    kind = report["format"] + (f", {report['quantize']}" if report.get("quantize") else "")
    latency = report.get("latency_seconds")
    return (f"{report['path']} ({kind}, {report['bytes']:,} bytes): top-1 agreement "
            f"{100 * report['top1_agreement']:.1f}% on {report['samples']} images, max abs diff "
            f"{report['max_abs_diff']:.3g}" + (f", latency {1000 * latency:.3f} ms" if latency else ""))
