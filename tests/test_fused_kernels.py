"""The fused batch norm and SGD compute what Keras's BatchNormalization and SGD compute (outputs,
gradients, moving statistics, inference; the same weight updates) with fewer graph operations to
trace."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from effscale.model.builder import ModelOptions, build  # noqa: E402
from effscale.model.fused_norm import FusedBatchNormalization  # noqa: E402
from effscale.training.fused_sgd import FusedSGD  # noqa: E402


def _pair(**kwargs):
    fused, plain = FusedBatchNormalization(**kwargs), keras.layers.BatchNormalization(**kwargs)
    fused.build((None, 5, 5, 6))
    plain.build((None, 5, 5, 6))
    rng = np.random.default_rng(1)
    weights = [rng.normal(size=w.shape).astype("float32") for w in plain.get_weights()]
    weights[-1] = np.abs(weights[-1]) + 0.5  # the moving variance, always the last
    plain.set_weights(weights)
    fused.set_weights(weights)
    return fused, plain


@pytest.mark.parametrize("kwargs", [{"momentum": 0.9}, {"momentum": 0.99, "epsilon": 1e-5},
                                    {"center": False}, {"scale": False}])
def test_training_steps_match_keras_batch_normalization(kwargs):
    fused, plain = _pair(**kwargs)
    rng = np.random.default_rng(2)
    for _ in range(3):  # the moving statistics follow the same average, step after step
        x = tf.constant(rng.normal(2.0, 3.0, size=(4, 5, 5, 6)).astype("float32"))
        outputs, gradients = [], []
        for layer in (fused, plain):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x, training=True)
                loss = tf.reduce_sum(y * tf.range(6, dtype="float32"))
            outputs.append(y.numpy())
            gradients.append([g.numpy() for g in tape.gradient(loss, [x, *layer.trainable_variables])])
        np.testing.assert_allclose(outputs[0], outputs[1], atol=2e-5)
        for a, b in zip(*gradients):
            np.testing.assert_allclose(a, b, atol=2e-4, rtol=1e-4)
        np.testing.assert_allclose(fused.moving_mean.numpy(), plain.moving_mean.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(fused.moving_variance.numpy(), plain.moving_variance.numpy(), rtol=1e-5)
    x = rng.normal(size=(2, 5, 5, 6)).astype("float32")
    # Keras's own inference path, on moving statistics equal to float rounding
    np.testing.assert_allclose(fused(x, training=False), plain(x, training=False), atol=1e-5)


def test_what_the_kernel_does_not_cover_takes_keras_path():
    fused, plain = _pair(momentum=0.9, synchronized=True)
    x = np.random.default_rng(3).normal(size=(4, 5, 5, 6)).astype("float32")
    np.testing.assert_array_equal(fused(x, training=True), plain(x, training=True))
    tiny_epsilon, tiny_plain = _pair(momentum=0.9, epsilon=1e-7)  # under what the kernel accepts
    np.testing.assert_array_equal(tiny_epsilon(x, training=True), tiny_plain(x, training=True))
    flat, flat_plain = FusedBatchNormalization(), keras.layers.BatchNormalization()
    x = np.random.default_rng(4).normal(size=(8, 6)).astype("float32")
    np.testing.assert_array_equal(flat(x, training=True), flat_plain(x, training=True))


def _step_ops(model, optimizer=None) -> int:
    """Graph operations of one traced training step (forward, gradient, update)."""
    optimizer = optimizer or keras.optimizers.SGD(0.1, momentum=0.9)
    optimizer.build(model.trainable_variables)

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, model(x, training=True)))
        optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
        return loss

    spec = (tf.TensorSpec((8, 16, 16, 3)), tf.TensorSpec((8,), tf.int32))
    return len(step.get_concrete_function(*spec).graph.get_operations())


def test_a_model_with_fused_batch_norm_has_the_same_weights_and_a_smaller_step(tmp_path):
    plain = build("tiny", "w=0.25,d=0.5,r=16", classes=4, options=ModelOptions(bn_momentum=0.9))
    fused = build("tiny", "w=0.25,d=0.5,r=16", classes=4, options=ModelOptions(bn_momentum=0.9,
                                                                                fused_batch_norm=True))
    kinds = {type(layer).__name__ for layer in fused.layers}
    assert "FusedBatchNormalization" in kinds and "BatchNormalization" not in kinds
    assert [w.path for w in fused.weights] == [w.path for w in plain.weights]
    fused.set_weights(plain.get_weights())
    x = np.random.default_rng(5).uniform(size=(2, 16, 16, 3)).astype("float32")
    np.testing.assert_array_equal(fused.predict(x, verbose=0), plain.predict(x, verbose=0))
    assert _step_ops(fused) < 0.9 * _step_ops(plain)  # the point of it: less to trace
    path = str(tmp_path / "fused.keras")
    fused.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded.get_layer("stem_bn")).__name__ == "FusedBatchNormalization"
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), plain.predict(x, verbose=0))


@pytest.mark.slow
@pytest.mark.parametrize("nesterov", [False, True])
def test_fused_sgd_trains_a_model_as_keras_sgd_does(nesterov):
    models, histories = [], []
    x = np.random.default_rng(6).uniform(size=(32, 16, 16, 3)).astype("float32")
    y = np.arange(32) % 4
    for optimizer in (FusedSGD, keras.optimizers.SGD):
        keras.utils.set_random_seed(0)
        model = build("tiny", "w=0.25,d=0.5,r=16", classes=4, options=ModelOptions(bn_momentum=0.9))
        rate = keras.optimizers.schedules.CosineDecay(0.05, decay_steps=8)
        model.compile(optimizer(rate, momentum=0.9, nesterov=nesterov), "sparse_categorical_crossentropy")
        histories.append(model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history["loss"])
        models.append(model)
    np.testing.assert_allclose(histories[0], histories[1], rtol=1e-5)
    for a, b in zip(models[0].get_weights(), models[1].get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=2e-5)  # float rounding (the kernel fuses)
    momenta = [[v.numpy() for v in m.optimizer.variables if "momentum" in v.path] for m in models]
    assert len(momenta[0]) == len(models[0].trainable_variables) == len(momenta[1])
    for a, b in zip(*momenta):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=2e-5)  # float rounding (the kernel fuses)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(models[0].optimizer))
    assert type(restored) is FusedSGD and restored.nesterov == nesterov and restored.momentum == 0.9


def test_fused_sgd_has_a_smaller_step_and_keeps_keras_path_without_momentum():
    model = build("tiny", "w=0.25,d=0.5,r=16", classes=4, options=ModelOptions(bn_momentum=0.9))
    assert _step_ops(model, FusedSGD(0.1, momentum=0.9)) < 0.9 * _step_ops(model)
    a, b = keras.Variable(np.ones(3, "float32")), keras.Variable(np.ones(3, "float32"))
    FusedSGD(0.1).apply([np.array([1.0, 2.0, 3.0], "float32")], [a])
    keras.optimizers.SGD(0.1).apply([np.array([1.0, 2.0, 3.0], "float32")], [b])
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_a_fused_batch_norm_option_that_is_not_a_bool_is_one_clear_error():
    from effscale.common.errors import UserError

    with pytest.raises(UserError, match="fused_batch_norm must be True or False, got 'yes'"):
        build("tiny", "w=0.25,d=0.5,r=16", classes=4, options=ModelOptions(fused_batch_norm="yes"))
