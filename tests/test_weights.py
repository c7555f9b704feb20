"""effscale.load_weights: keras.applications files into effscale models, partial transfer
between genotypes, every file format, and the errors."""

import os

import h5py
import keras
import numpy as np
import pytest

import effscale
from effscale import UserError
from effscale.model.weights import IMAGENET_MEAN, IMAGENET_STDDEV, refresh_normalization

TINY = "stem16_head128_res32_swish-mb_r1_k3_s1_e1_c16_se0.25-mb_r1_k3_s2_e4_c24_se0.25-mb_r2_k5_s2_e4_c40_se0.25-mb_r1_k3_s1_e4_c64_se0.25"
# A different genotype: stage 2 has kernel 5 and expand 6, stage 3 one block more, stage 4 wider.
OTHER = "stem16_head128_res32_swish-mb_r1_k3_s1_e1_c16_se0.25-mb_r1_k5_s2_e6_c24_se0.25-mb_r3_k5_s2_e4_c40_se0.25-mb_r1_k3_s1_e4_c80_se0.25"


@pytest.fixture(autouse=True)
def fresh_session():
    yield
    keras.backend.clear_session()


def save_legacy_h5(model, path):
    """Write weights in the legacy Keras (keras.applications) h5 layout, with Keras' own code:
    the public ``model.save("x.h5")`` writes the legacy format, whose ``model_weights`` group is
    exactly what keras.applications' weight files hold at their root (same attributes, names and
    arrays as Keras' ``save_weights_to_hdf5_group``); it is lifted to the root here."""
    whole = f"{path}.model.h5"
    model.save(whole)
    with h5py.File(whole, "r") as source, h5py.File(path, "w") as handle:
        weights = source["model_weights"]
        for key, value in weights.attrs.items():
            handle.attrs[key] = value
        for name in weights:
            source.copy(weights[name], handle, name=name)
    os.remove(whole)


def randomize_statistics(model, seed):
    """Random BatchNormalization parameters and statistics (at init they are 1/0 everywhere,
    so an untransferred BN layer would still 'match')."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.weights[0].shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, n).astype("float32"), rng.normal(0, 0.1, n).astype("float32"),
                               rng.normal(0, 0.1, n).astype("float32"), rng.uniform(0.5, 1.5, n).astype("float32")])


def set_normalization(model, mean, variance):
    layer = next(l for l in model.layers if isinstance(l, keras.layers.Normalization))
    layer.set_weights([np.array(mean, "float32"), np.array(variance, "float32"), np.array(0, "int64")])
    layer.finalize_state()


def features_and_logits(model, images):
    probe = keras.Model(model.inputs, [model.get_layer("avg_pool").output, model.output])
    return [np.asarray(out) for out in probe(images, training=False)]


@pytest.mark.slow
@pytest.mark.parametrize("index", [0, 2])
def test_keras_applications_weights_load_into_the_same_variant(tmp_path, index):
    theirs = getattr(keras.applications, f"EfficientNetB{index}")(weights=None, classifier_activation=None)
    randomize_statistics(theirs, index)
    # keras' ImageNet files hold (mean, stddev) in the Normalization layer (tensorflow#49930)
    set_normalization(theirs, IMAGENET_MEAN, IMAGENET_STDDEV)
    legacy = tmp_path / f"efficientnetb{index}.h5"
    save_legacy_h5(theirs, legacy)
    # keras applies those files with an extra Rescaling(1/sqrt(stddev)): (x - mean) / stddev,
    # which is this Normalization:
    set_normalization(theirs, IMAGENET_MEAN, np.square(IMAGENET_STDDEV))
    resolution = theirs.input_shape[1]
    images = np.random.default_rng(index).uniform(0, 255, (1, resolution, resolution, 3)).astype("float32")
    expected = features_and_logits(theirs, images)
    ours = effscale.build("efficientnet-b0", f"b{index}", classifier_activation=None)
    before = features_and_logits(ours, images)
    assert np.abs(before[0] - expected[0]).max() > 1e-2 * np.abs(expected[0]).max()

    report = effscale.load_weights(ours, str(legacy), exact=True)
    assert report.exact and len(report.transferred) == sum(1 for l in theirs.layers if l.weights)
    assert any("tensorflow/tensorflow#49930" in note for note in report.notes)
    got = features_and_logits(ours, images)
    for x, y in zip(got, expected):  # pooled features ~1, logits tiny at random init: both
        scale = max(1.0, float(np.abs(y).max()))
        np.testing.assert_allclose(x, y, atol=1e-5 * scale, rtol=1e-5)
    assert np.abs(expected[0]).max() > 0.1

    if index == 0:  # the Keras 3 format too, from a fresh model
        theirs.save_weights(tmp_path / "b0.weights.h5")
        fresh = effscale.build("efficientnet-b0", "b0", classifier_activation=None)
        report = effscale.load_weights(fresh, str(tmp_path / "b0.weights.h5"), exact=True)
        assert report.exact and report.notes == []
        for x, y in zip(features_and_logits(fresh, images), expected):
            np.testing.assert_allclose(x, y, atol=1e-5 * max(1.0, float(np.abs(y).max())), rtol=1e-5)


def weight_shapes(model):
    return {l.name: [tuple(w.shape) for w in l.weights] for l in model.layers if l.weights}


@pytest.mark.parametrize("kind", ["model", "keras-file", "weights-file", "legacy-h5"])
def test_partial_transfer_between_genotypes_reports_exactly_the_matching_layers(tmp_path, kind):
    source = effscale.build(TINY, "w=0.5,d=1,r=32", classes=5, options=effscale.ModelOptions(bn_momentum=0.9))
    randomize_statistics(source, 1)
    target = effscale.build(OTHER, "w=0.5,d=1,r=32", classes=3, options=effscale.ModelOptions(bn_momentum=0.9))
    original = {l.name: [w.copy() for w in l.get_weights()] for l in target.layers if l.weights}
    src, tgt = weight_shapes(source), weight_shapes(target)
    both = [n for n in tgt if n in src]
    expected_transferred = [n for n in both if src[n] == tgt[n]]
    expected_mismatched = [n for n in both if src[n] != tgt[n]]
    assert len(expected_transferred) >= 10 and len(expected_mismatched) >= 5  # a real partial case
    assert "block2a_dwconv" in expected_mismatched and "predictions" in expected_mismatched

    given = {"model": source, "keras-file": tmp_path / "s.keras", "weights-file": tmp_path / "s.weights.h5",
             "legacy-h5": tmp_path / "s.h5"}[kind]
    if kind == "keras-file":
        source.save(given)
    elif kind == "weights-file":
        source.save_weights(given)
    elif kind == "legacy-h5":
        save_legacy_h5(source, given)
    report = effscale.load_weights(target, given if kind == "model" else str(given))

    assert report.transferred == expected_transferred
    assert report.mismatched == expected_mismatched
    assert report.missing == [n for n in tgt if n not in src]
    assert sorted(report.unused) == sorted(n for n in src if n not in tgt)
    assert "block3c_dwconv" in report.missing
    for name in expected_transferred:
        for a, b in zip(target.get_layer(name).get_weights(), source.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    for name in expected_mismatched + report.missing:
        for a, b in zip(target.get_layer(name).get_weights(), original[name]):
            np.testing.assert_array_equal(a, b)
    assert report.to_dict()["shapes"]["predictions"] == [[[64, 5], [5]], [[64, 3], [3]]]
    table = report.table()
    assert "block2a_dwconv" in table and f"transferred {len(expected_transferred)} layers" in table


def test_a_legacy_full_model_h5_loads_exactly_and_mismatches_are_refused(tmp_path):
    source = effscale.build(TINY, "w=0.25,d=0.5,r=32", classes=3, options=effscale.ModelOptions(bn_momentum=0.9))
    randomize_statistics(source, 2)
    refresh_normalization(source)  # Normalization's cached statistics follow its weights
    source.save(tmp_path / "full.h5")  # the legacy whole-model format (model_weights group)
    target = effscale.build(TINY, "w=0.25,d=0.5,r=32", classes=3, options=effscale.ModelOptions(bn_momentum=0.9))
    images = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    report = effscale.load_weights(target, str(tmp_path / "full.h5"), exact=True)
    assert report.exact
    np.testing.assert_allclose(np.asarray(target(images)), np.asarray(source(images)), atol=1e-6)
    wider = effscale.build(TINY, "w=0.5,d=0.5,r=32", classes=3, options=effscale.ModelOptions(bn_momentum=0.9))
    with pytest.raises(UserError, match="do not match exactly"):
        effscale.load_weights(wider, str(tmp_path / "full.h5"), exact=True)


def test_missing_weights_say_where_to_put_them(tmp_path, monkeypatch):
    model = effscale.build(TINY, "w=0.25,d=0.5,r=32", classes=3)
    with pytest.raises(UserError, match="does not exist") as error:
        effscale.load_weights(model, str(tmp_path / "nope.h5"))
    assert str(tmp_path / "nope.h5") in str(error.value)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    with pytest.raises(UserError) as error:
        effscale.load_weights(model, "imagenet:b3")
    message = str(error.value)
    assert os.path.join(str(tmp_path / "kh"), "models", "efficientnetb3_notop.h5") in message
    assert "never downloads" in message and "\n" not in message
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(UserError, match="not an HDF5"):
        effscale.load_weights(model, str(tmp_path / "text.h5"))
    with pytest.raises(UserError, match="expected a .keras"):
        effscale.load_weights(model, __file__)
    with pytest.raises(UserError, match="cannot tell which EfficientNet"):
        effscale.load_weights(model, "imagenet")


def test_imagenet_name_finds_the_keras_cache(tmp_path, monkeypatch):
    source = effscale.build(TINY, "w=0.25,d=0.5,r=32", classes=3)
    randomize_statistics(source, 3)
    os.makedirs(tmp_path / "models")
    save_legacy_h5(source, tmp_path / "models" / "efficientnetb0_notop.h5")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    target = effscale.build(TINY, "w=0.25,d=0.5,r=32", classes=3)
    report = effscale.load_weights(target, "imagenet:b0")
    assert report.exact and "efficientnetb0_notop.h5" in report.source
    np.testing.assert_array_equal(target.get_layer("top_bn").get_weights()[2], source.get_layer("top_bn").get_weights()[2])


def test_build_with_a_weights_file_predicts_like_keras_applications_loading_it(tmp_path):
    keras.utils.set_random_seed(1)
    theirs = keras.applications.EfficientNetB0(weights=None, input_shape=(64, 64, 3), classes=7)
    # keras leaves Normalization at mean 0 / variance 1 with weights=None; real statistics make
    # the comparison cover the input normalization too.
    normalization = next(layer for layer in theirs.layers if isinstance(layer, keras.layers.Normalization))
    normalization.set_weights([np.array([120.0, 110.0, 100.0], "float32"), np.array([3600.0, 3000.0, 2500.0],
                               "float32"), np.array(0, "int64")])
    path = str(tmp_path / "b0.weights.h5")
    theirs.save_weights(path)
    common = {"classes": 7, "input_shape": (64, 64, 3), "classifier_activation": None}
    reloaded = keras.applications.EfficientNetB0(weights=path, **common)
    ours = effscale.build("efficientnet-b0", "b0", weights=path, **common)
    images = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    expected = np.asarray(reloaded(images, training=False))
    np.testing.assert_allclose(ours(images, training=False), expected, rtol=1e-4, atol=1e-5)
    unloaded = np.asarray(effscale.build("efficientnet-b0", "b0", **common)(images, training=False))
    assert np.abs(unloaded - expected).max() > 100 * np.abs(expected).max() * 1e-4  # the file made the difference


def test_build_imagenet_without_the_cached_file_is_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(UserError) as error:
        effscale.build("efficientnet-b0", "b0", weights="imagenet")
    message = str(error.value)
    assert "\n" not in message and "never downloads" in message and "efficientnetb0.h5" in message
    assert not any(tmp_path.iterdir())  # nothing fetched, nothing written


def test_build_imagenet_reads_the_cached_file(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    (tmp_path / "models").mkdir()
    theirs = keras.applications.EfficientNetB0(weights=None, include_top=False, input_shape=(32, 32, 3))
    save_legacy_h5(theirs, tmp_path / "models" / "efficientnetb0_notop.h5")  # the layout keras caches
    ours = effscale.build("efficientnet-b0", "b0", include_top=False, input_shape=(32, 32, 3), weights="imagenet")
    images = np.random.default_rng(1).uniform(0, 255, (1, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(ours(images, training=False), theirs(images, training=False), atol=1e-5)

