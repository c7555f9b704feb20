"""Evaluation helpers: metrics against a hand count, weight digests, mixed-precision models
measured through a float32 copy."""

import numpy as np
import tensorflow as tf

import effscale
from effscale.training.evaluate import evaluate_dataset, float32_copy, weights_digest
from effscale.latency import measure_latency
from effscale.training.strategy import dtype_policy


def test_metrics_match_a_count_by_hand():
    model = effscale.build("tiny", "w=0.25,d=0.25,r=8", classes=7)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (23, 8, 8, 3)).astype("float32")
    labels = rng.integers(0, 7, 23).astype("int32")
    metrics = evaluate_dataset(model, tf.data.Dataset.from_tensor_slices((images, labels)).batch(5), 7)
    probs = np.asarray(model(images, training=False))
    top5 = np.argsort(-probs, axis=1)[:, :5]
    assert metrics["examples"] == 23
    assert metrics["top1"] == np.mean(probs.argmax(1) == labels)
    assert metrics["top5"] == np.mean([label in row for label, row in zip(labels, top5)])
    assert abs(metrics["loss"] - np.mean(-np.log(probs[np.arange(23), labels]))) < 1e-4


def test_evaluation_leaves_the_model_as_it_was_and_refuses_empty_data():
    import keras
    import pytest

    from effscale.common.errors import UserError

    model = effscale.build("tiny", "w=0.25,d=0.25,r=8", classes=4)
    data = tf.data.Dataset.from_tensor_slices((np.full((6, 8, 8, 3), 7.0, "float32"), np.arange(6) % 4)).batch(4)
    first = evaluate_dataset(model, data, 4)
    assert not model.compiled                          # evaluated through a compiled copy
    model.compile(optimizer="sgd", loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.1), metrics=["mae"])
    assert evaluate_dataset(model, data, 4) == first   # not the model's own loss and metrics
    assert model.loss.label_smoothing == 0.1 and isinstance(model.optimizer, keras.optimizers.SGD)
    bias = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)][-1].bias
    bias.assign(bias.numpy() + np.arange(4) * 50.0)  # the copy shares the weights:
    assert evaluate_dataset(model, data, 4)["top1"] == 1 / 6  # every image now predicts class 3 (labels 0 1 2 3 0 1)
    with pytest.raises(UserError, match="empty"):
        evaluate_dataset(model, data.take(0), 4)


def test_weights_digest_sees_every_weight():
    model = effscale.build("tiny", "w=0.25,d=0.25,r=8", classes=3)
    before = weights_digest(model)
    assert weights_digest(model) == before
    variance = next(w for w in model.weights if w.path.endswith("moving_variance"))  # a non-trainable weight
    variance.assign(variance.numpy() * 1.5)
    assert weights_digest(model) != before


def test_mixed_precision_model_is_measured_through_a_float32_copy():
    import keras

    keras.utils.set_random_seed(0)  # unseeded initial weights made the output spread below flaky
    with dtype_policy("mixed_bfloat16"):
        model = effscale.build("tiny", "w=0.25,d=0.25,r=8", classes=4)
    rng = np.random.default_rng(2)
    for weight in model.trainable_weights:  # weights far from the initial ones: outputs that differ by input
        weight.assign(weight.numpy() + rng.normal(0, 0.3, weight.shape).astype("float32"))
    assert model.layers[-1].dtype_policy.name == "mixed_bfloat16"
    copy = float32_copy(model)
    assert copy is not model and all(layer.dtype_policy.name == "float32" for layer in copy.layers
                                     if hasattr(layer, "dtype_policy"))
    x = np.random.default_rng(1).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    mixed, full = np.asarray(model(x), "float32"), np.asarray(copy(x))
    assert np.abs(full[0] - full[1]).max() > 0.05  # the outputs depend on the input ...
    np.testing.assert_allclose(mixed, full, atol=0.03)  # ... and agree up to bfloat16 rounding
    assert measure_latency(copy, runs=2, warmup=0) > 0
    assert float32_copy(copy) is copy
