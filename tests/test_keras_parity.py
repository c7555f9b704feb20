"""effscale's EfficientNet family against keras.applications, built in the same test."""

import keras
import numpy as np
import pytest

import effscale
from effscale.model import cost
from effscale.model.weights import canonical_layers, transfer_weights

# Published numbers: keras.applications parameter counts (keras/src/applications/efficientnet.py,
# EfficientNetB0..B7 with include_top and 1000 classes, reproduced on keras 3.15.1), the paper's
# Table 2 multiply-adds (Tan & Le 2019, arXiv 1905.11946), and TensorFlow's graph profiler
# (float_operation) on those keras models, divided by 2 (docs/efficientnet-family.md).
KERAS_PARAMS = [5_330_571, 7_856_239, 9_177_569, 12_320_535, 19_466_823, 30_562_527, 43_265_143, 66_658_687]
PAPER_MACS = [0.39e9, 0.70e9, 1.0e9, 1.8e9, 4.2e9, 9.9e9, 19e9, 37e9]
KERAS_PROFILER_HALF_FLOPS = [0.4015e9, 0.7124e9, 1.026e9, 1.883e9, 4.510e9, 10.50e9, 19.46e9, 38.43e9]


def keras_efficientnet(index, **kwargs):
    return getattr(keras.applications, f"EfficientNetB{index}")(weights=None, **kwargs)


def weight_shapes(model):
    return {name: [tuple(w.shape) for w in layer.weights] for name, layer in canonical_layers(model).items()}


@pytest.fixture(autouse=True)
def fresh_session():
    yield
    keras.backend.clear_session()


@pytest.mark.slow
@pytest.mark.parametrize("index", range(8))
def test_family_matches_keras_layer_for_layer(index):
    ours = effscale.build("efficientnet-b0", f"b{index}")
    theirs = keras_efficientnet(index)
    assert ours.count_params() == theirs.count_params() == KERAS_PARAMS[index]
    assert weight_shapes(ours) == weight_shapes(theirs)
    assert ours.input_shape == theirs.input_shape
    assert ours.get_layer("top_dropout").rate == theirs.get_layer("top_dropout").rate
    assert [layer.rate for layer in ours.layers if layer.name.endswith("_drop")] == pytest.approx(
        [layer.rate for layer in theirs.layers if layer.name.endswith("_drop")])
    # The analytic cost model describes exactly this model.
    analytic = cost.cost("efficientnet-b0", f"b{index}")
    assert analytic.parameters == ours.count_params()
    assert analytic.trainable_parameters == cost.model_parameters(ours)[0]
    del theirs
    flops = cost.profiler_flops(ours)
    assert flops / 2 == pytest.approx(KERAS_PROFILER_HALF_FLOPS[index], rel=0.01)


@pytest.mark.slow
@pytest.mark.parametrize("index", range(8))
def test_family_without_top_matches_keras(index):
    ours = effscale.build("efficientnet-b0", f"b{index}", include_top=False, pooling="avg")
    theirs = keras_efficientnet(index, include_top=False, pooling="avg")
    assert ours.count_params() == theirs.count_params()
    assert ours.output_shape == theirs.output_shape
    assert cost.cost("efficientnet-b0", f"b{index}", include_top=False).parameters == ours.count_params()


@pytest.mark.parametrize("index", range(8))
def test_multiply_adds_within_five_percent_of_the_paper(index):
    macs = cost.multiply_adds("efficientnet-b0", f"b{index}")
    assert macs == pytest.approx(PAPER_MACS[index], rel=0.05)


def features_and_logits(model, images):
    """Pooled features (order-1 magnitudes) and logits (tiny at random init) of a model."""
    probe = keras.Model(model.inputs, [model.get_layer("avg_pool").output, model.output])
    return [np.asarray(out) for out in probe(images, training=False)]


def assert_same_outputs(a, b):
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(y).max())))
        np.testing.assert_allclose(x / np.abs(y).max(), y / np.abs(y).max(), atol=1e-5)


def assert_different_outputs(a, b):
    features_a, features_b = a[0], b[0]
    assert np.abs(features_a - features_b).max() > 1e-2 * np.abs(features_b).max()


@pytest.mark.slow
@pytest.mark.parametrize("index", [0, 3])
def test_weights_interchange_both_ways(index):
    theirs = keras_efficientnet(index, classifier_activation=None)
    ours = effscale.build("efficientnet-b0", f"b{index}", classifier_activation=None)
    resolution = ours.input_shape[1]
    images = np.random.default_rng(index).uniform(0, 255, (1, resolution, resolution, 3)).astype("float32")
    assert_different_outputs(features_and_logits(ours, images), features_and_logits(theirs, images))

    report = transfer_weights(theirs, ours)
    assert report.missing == [] and report.mismatched == []
    assert_same_outputs(features_and_logits(ours, images), features_and_logits(theirs, images))

    other = effscale.build("efficientnet-b0", f"b{index}", classifier_activation=None)
    assert_different_outputs(features_and_logits(other, images), features_and_logits(theirs, images))
    report = transfer_weights(other, theirs)
    assert report.missing == [] and report.mismatched == []
    assert_same_outputs(features_and_logits(theirs, images), features_and_logits(other, images))

    # The TensorFlow profiler counts the same float operations on both graphs
    # (b1..b7 are checked against the published profiler numbers above).
    if index == 0:
            assert cost.profiler_flops(ours) == pytest.approx(cost.profiler_flops(theirs), rel=0.01)


def test_mobilenet_v2_trainable_parameters_equal_keras():
    ours = effscale.build("mobilenet-v2", "b0")
    theirs = keras.applications.MobileNetV2(weights=None)
    assert cost.model_parameters(ours)[0] == cost.model_parameters(theirs)[0]
    assert cost.cost("mobilenet-v2").trainable_parameters == cost.model_parameters(theirs)[0]


def test_mnasnet_a1_matches_the_paper():
    model = effscale.build("mnasnet-a1", "b0")
    assert model.count_params() == pytest.approx(3.9e6, rel=0.02)
    assert cost.multiply_adds("mnasnet-a1") == pytest.approx(312e6, rel=0.02)
    assert cost.parameter_count("mnasnet-a1") == model.count_params()


@pytest.mark.parametrize("text", [
    "stem16_head64_res32_relu-fmb_r2_k3_s2_e4_c24_se0.25-fmb_r1_k3_s1_e1_c24-ds_r2_k5_s2_e1_c32_se0.25_hswish",
    "stem8_head32_res24_gelu-ds_r1_k3_s1_e1_c8-mb_r3_k7_s2_e3_c16_noskip-mb_r1_k1_s1_e4.5_c16_relu6",
])
def test_every_block_type_builds_and_the_cost_model_counts_it(text):
    for variant in ("b0", "w=0.5,d=2,r=40"):
        model = effscale.build(text, variant, classes=7)
        assert cost.parameter_count(text, variant, classes=7) == model.count_params()
        assert model.output_shape == (None, 7)
        image = np.zeros((1, *model.input_shape[1:]), "float32")
        assert np.isfinite(model.predict(image, verbose=0)).all()
