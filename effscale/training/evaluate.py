"""Evaluate a trained variant: top-1 and top-5 accuracy, loss, parameters, multiply-adds,
measured CPU latency and training throughput, written as JSON beside the ``.keras`` model.
"""

from __future__ import annotations

import hashlib
import os
import time
import weakref
from dataclasses import dataclass

import numpy as np

from effscale.common.errors import UserError
from effscale.common.migrations import read_state, write_state

MODEL_FILE = "model.keras"
RESULTS_FILE = "results.json"
EVALUATION_FILE = "evaluation.json"


# Keras' history names -> names that say the split
HISTORY_NAMES = {"loss": "train_loss", "accuracy": "train_accuracy", "val_loss": "validation_loss",
                 "val_accuracy": "validation_accuracy"}


def split_metrics(split: str, metrics: dict) -> dict:
    """``{"test_top1": ..., ...}``: :func:`evaluate_dataset` numbers named by split.

    >>> split_metrics("test", {"top1": 0.5, "examples": 10})
    {'test_top1': 0.5, 'test_examples': 10}
    """
    return {f"{split}_{key}": value for key, value in metrics.items()}


def evaluate_dataset(model, dataset, num_classes: int | None = None) -> dict:
    """Top-1, top-5 (top-k with k = min(5, classes)) and mean cross-entropy of ``model`` over a
    batched ``(images, int labels)`` dataset, in one pass, in inference mode: ``model.evaluate``
    of a functional copy that shares ``model``'s layers and weights, compiled once per model and
    k with those metrics (so ``model``'s own compile state and distribution strategy stay as they
    are, and a repeated evaluation reuses its traced step).

    >>> import numpy as np, tensorflow as tf, effscale
    >>> model = effscale.build("tiny", "w=0.25,d=0.25,r=8", classes=3)
    >>> data = tf.data.Dataset.from_tensor_slices((np.zeros((4, 8, 8, 3), "float32"), np.arange(4) % 3)).batch(3)
    >>> metrics = evaluate_dataset(model, data, num_classes=3)
    >>> sorted(metrics), metrics["examples"], metrics["top5"]
    (['examples', 'loss', 'top1', 'top5'], 4, 1.0)
    """
    classes = num_classes or int(model.output_shape[-1])
    evaluator, top1, topk = _evaluator(model, min(5, classes))
    try:
        logs = evaluator.evaluate(dataset, verbose=0, return_dict=True)
    except ValueError as error:  # Keras refuses a dataset that yields nothing
        if int(top1.count.numpy()) == 0:
            raise UserError("the evaluation dataset is empty") from None
        raise
    count = int(top1.count.numpy())
    if count == 0:
        raise UserError("the evaluation dataset is empty")
    # the exact fractions from the metrics' counts (their result() is a float32 division)
    return {"top1": float(top1.total.numpy()) / count, "top5": float(topk.total.numpy()) / count,
            "loss": float(logs["loss"]), "examples": count}


_EVALUATORS = weakref.WeakKeyDictionary()  # model -> {k: (compiled functional copy, top-1, top-k metric)}


def _evaluator(model, k: int):
    import keras

    found = _EVALUATORS.setdefault(model, {})
    if k not in found:
        if getattr(model, "inputs", None):
            # float32 scores whatever the model computes in: the metrics' top-k op takes no float16
            outputs = [keras.layers.Activation("linear", dtype="float32")(o) for o in model.outputs]
            evaluator = keras.Model(model.inputs, outputs)
        else:
            evaluator = model
        top1 = keras.metrics.SparseCategoricalAccuracy(name="top1")  # its count is the number of examples
        topk = keras.metrics.SparseTopKCategoricalAccuracy(k=k, name="top5")
        evaluator.compile(loss=keras.losses.SparseCategoricalCrossentropy(), metrics=[top1, topk], jit_compile=False)
        found[k] = (evaluator, top1, topk)
    return found[k]


def weights_digest(model) -> str:
    """SHA-256 of every weight of ``model`` (trainable and not), in order: equal digests,
    equal weights (what two workers compare)."""
    digest = hashlib.sha256()
    for weight in model.weights:
        value = np.ascontiguousarray(np.asarray(weight.numpy() if hasattr(weight, "numpy") else weight))
        digest.update(weight.path.encode() if hasattr(weight, "path") else b"")
        digest.update(value.tobytes())
    return digest.hexdigest()


def _float32_config(value, key=None):
    if isinstance(value, dict):
        config = value.get("config")
        if (value.get("class_name") in ("DTypePolicy", "FloatDTypePolicy") and isinstance(config, dict)
                and str(config.get("name", "")).startswith("mixed_")):
            return dict(value, config=dict(config, name="float32"))
        return {k: _float32_config(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_float32_config(v) for v in value]
    if key == "dtype" and isinstance(value, str) and value.startswith("mixed_"):
        return "float32"
    return value


def float32_copy(model):
    """``model`` itself when it computes in float32, else a float32 copy with its weights
    (LiteRT cannot convert bfloat16 / float16 compute, and CPU latency is float32 anyway)."""
    import keras

    mixed = [layer for layer in model.layers
             if str(getattr(getattr(layer, "dtype_policy", None), "name", "float32")).startswith("mixed_")]
    if not mixed:
        return model
    copy = keras.Model.from_config(_float32_config(model.get_config()))
    copy.set_weights([w.numpy() for w in model.weights])
    for layer in copy.layers:
        if isinstance(layer, keras.layers.Normalization):
            layer.finalize_state()
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = False
    return copy


def measure_train_throughput(model, batch_size: int = 16, steps: int = 5, warmup: int = 2, seed: int = 0) -> float:
    """Training images per second of ``model`` on random data (a fresh SGD optimizer; the
    model's weights are restored afterwards)."""
    import keras
    import tensorflow as tf

    shape = (batch_size, *model.input_shape[1:])
    classes = int(model.output_shape[-1])
    rng = np.random.default_rng(seed)
    images = tf.constant(rng.uniform(0, 255, shape).astype("float32"))
    labels = tf.constant(rng.integers(0, classes, batch_size).astype("int32"))
    saved = [w.numpy() for w in model.weights]
    optimizer = keras.optimizers.SGD(1e-6)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            probs = tf.cast(model(images, training=True), tf.float32)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, probs))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss

    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        float(step())
    seconds = time.perf_counter() - start
    for weight, value in zip(model.weights, saved):
        weight.assign(value)
    return batch_size * steps / seconds


def load_trained(model_dir: str):
    """(model, results record or None) of a training output folder."""
    from effscale.model.keras_file import load_keras_model

    path = os.path.join(model_dir, MODEL_FILE) if os.path.isdir(model_dir) else model_dir
    if not os.path.isfile(path):
        raise UserError(f"no trained model at {model_dir!r}: expected {MODEL_FILE} in it")
    model = load_keras_model(path)
    results_path = os.path.join(os.path.dirname(path), RESULTS_FILE)
    record = read_state(results_path, "training results") if os.path.isfile(results_path) else None
    return model, record


@dataclass(frozen=True)
class Timing:
    """What :func:`evaluate_model` times beside accuracy: ``latency_runs`` batch-1 forward passes
    after ``latency_warmup`` untimed ones on ``latency_threads`` threads (0 runs: skipped), and
    ``throughput_steps`` training steps of ``throughput_batch`` random images (0 steps: skipped).

    >>> Timing(latency_runs=0).throughput_steps
    5
    """

    latency_runs: int = 20
    latency_warmup: int = 3
    latency_threads: int = 1
    throughput_steps: int = 5
    throughput_batch: int = 16


def evaluate_model(model_dir_or_model, data=None, *, batch_size: int = 64, split: str = "test",
                   timing: Timing | None = None, write: bool = True, verbose: int = 0) -> dict:
    """Evaluate a trained model (a training output folder or a ``keras.Model``).

    ``data``: None (with a folder: the data its ``results.json`` records, split the same way), a
    source name (split as recorded when it is the recorded source, else at the defaults), a dict
    of :class:`~effscale.data.spec.DataSpec` fields changed over that (``{"data_dir": ...}``), or
    a ``DataSpec``; the resolution is always the model's. The record is written to
    ``evaluation.json`` beside the model (``write``). Top-1, top-5
    and loss are over ``split`` (``test``, the default, or ``validation``: the same images the
    training run held out, see :func:`effscale.data.pipeline.load_data`) and named by it
    (``test_top1``, ``test_top5``, ``test_loss``, ``test_examples``); ``params`` counts the built model, and
    ``multiply_adds`` comes from :func:`effscale.model.cost.cost` when the genotype is known;
    ``latency_seconds`` is :func:`effscale.latency.measure_latency` and ``train_images_per_second``
    is measured on random data, as ``timing`` (:class:`Timing`) says.

    >>> import effscale
    >>> model = effscale.build("tiny", "w=0.25,d=0.25,r=8", classes=10)
    >>> result = evaluate_model(model, "digits", timing=Timing(latency_runs=0, throughput_steps=0))
    >>> result["test_examples"], result["dataset"]
    (360, 'digits')
    """
    from effscale.data.pipeline import load_data
    from effscale.data.spec import DataSpec

    if split not in ("test", "validation"):
        raise UserError(f"unknown split {split!r}: expected test or validation")
    timing = timing or Timing()
    record = None
    folder = None
    if isinstance(model_dir_or_model, (str, os.PathLike)):
        folder = os.fspath(model_dir_or_model)
        model, record = load_trained(folder)
        if os.path.isfile(folder):
            folder = os.path.dirname(folder)
    else:
        model = model_dir_or_model
    resolution = int(model.input_shape[1])
    if isinstance(data, DataSpec):
        spec = data.replace(resolution=resolution)
    else:
        training = (record or {}).get("data", {})
        changes = dict(data) if isinstance(data, dict) else {"source": data} if data is not None else {}
        source = changes.pop("source", None) or training.get("source")
        if source is None:
            raise UserError("evaluate: no dataset given and none recorded beside the model")
        same = {k: v for k, v in training.items() if k not in ("train_examples", "train_fraction")} \
            if source == training.get("source") else {}
        spec = DataSpec.from_record({**same, "dataset": source}, resolution, **changes)
    dataset = spec.source
    splits = load_data(spec, batch_size=batch_size, cache=False)
    classes = int(model.output_shape[-1])
    if splits.num_classes != classes:
        raise UserError(f"dataset {dataset!r} has {splits.num_classes} classes but the model predicts {classes}")
    result = {"dataset": dataset, "split": split, "splits": splits.describe()["splits"]}
    result.update(split_metrics(split, evaluate_dataset(model, getattr(splits, split), classes)))
    result["params"] = int(model.count_params())
    result["multiply_adds"] = None
    if record and record.get("genotype") and record.get("variant"):
        from effscale.model.cost import cost
        from effscale.model.genotype import Genotype
        from effscale.model.scaling import Variant

        result["multiply_adds"] = int(cost(Genotype.parse(record["genotype"]), Variant.from_dict(record["variant"]),
                                           classes=classes).multiply_adds)
    result["latency_seconds"] = None
    if timing.latency_runs:
        from effscale.latency import measure_latency

        result["latency_seconds"] = measure_latency(float32_copy(model), runs=timing.latency_runs,
                                                    warmup=timing.latency_warmup, threads=timing.latency_threads)
        result["latency_threads"] = timing.latency_threads
    result["train_images_per_second"] = (measure_train_throughput(model, timing.throughput_batch,
                                                                  timing.throughput_steps)
                                         if timing.throughput_steps else None)
    if record:
        result["trained_images_per_second"] = record.get("train_images_per_second")
    if write and folder:
        write_state(os.path.join(folder, EVALUATION_FILE), result)
    if verbose:
        print(summary_line(result))
    return result


def summary_line(result: dict) -> str:
    """One line of the numbers that matter (the test split's, else the validation split's).

    >>> summary_line({"test_top1": 0.9, "test_top5": 1.0, "test_loss": 0.3, "params": 1200})
    'test top-1 0.9000, top-5 1.0000, loss 0.3000, params 1,200'
    """
    split = "test" if "test_top1" in result else "validation"
    parts = [f"{split} top-1 {result[split + '_top1']:.4f}", f"top-5 {result[split + '_top5']:.4f}",
             f"loss {result[split + '_loss']:.4f}", f"params {result['params']:,}"]
    if result.get("multiply_adds") is not None:
        parts.append(f"multiply-adds {result['multiply_adds']:,}")
    if result.get("latency_seconds") is not None:
        parts.append(f"latency {1000 * result['latency_seconds']:.2f} ms")
    if result.get("train_images_per_second") is not None:
        parts.append(f"train {result['train_images_per_second']:.1f} img/s")
    return ", ".join(parts)
