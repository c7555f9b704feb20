"""Builder behaviour that does not need keras.applications: preprocessing, heads, reloads."""

import keras
import numpy as np
import pytest

import effscale
from effscale.common.errors import UserError


def test_preprocessing_applies_imagenet_statistics_to_pixels():
    model = effscale.build("tiny", "w=0.25,d=0.5,r=16", classes=3)
    probe = keras.Model(model.inputs, model.get_layer("normalization").output)
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 3)).astype("float32")
    expected = (pixels / 255.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(probe(pixels).numpy(), expected, rtol=1e-4, atol=1e-4)


def test_saved_model_predicts_like_the_built_one(tmp_path):
    model = effscale.build("tiny", "w=0.25,d=0.5,r=16", classes=3)
    model.save(tmp_path / "m.keras")
    images = np.random.default_rng(1).uniform(0, 255, (2, 16, 16, 3)).astype("float32")
    reloaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(reloaded.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-6)


def test_heads_and_pooling():
    assert effscale.build("tiny", "w=0.25,d=0.5,r=16", include_top=False).output_shape == (None, 2, 2, 32)
    assert effscale.build("tiny", "w=0.25,d=0.5,r=16", include_top=False, pooling="max").output_shape == (None, 32)
    flexible = effscale.build("tiny", "w=0.25,d=0.5,r=16", classes=4, input_shape=(None, None, 3))
    assert flexible.predict(np.zeros((1, 40, 24, 3), "float32"), verbose=0).shape == (1, 4)
    without = effscale.build("tiny", "w=0.25,d=0.5,r=16", classes=4,
                             options=effscale.ModelOptions(include_preprocessing=False))
    assert "normalization" not in [layer.name for layer in without.layers]


@pytest.mark.parametrize("kwargs,named", [
    ({"classes": 0}, "classes"), ({"pooling": "mean", "include_top": False}, "pooling"),
    ({"dropout": 1.0}, "dropout"), ({"bn_momentum": 1.5}, "bn_momentum"), ({"input_shape": (16, 16)}, "input_shape"),
    ({"drop_connect": -0.1}, "drop_connect"),
])
def test_bad_builder_arguments(kwargs, named):
    own = {k: kwargs.pop(k) for k in ("dropout", "bn_momentum", "drop_connect") if k in kwargs}
    if own:
        kwargs["options"] = effscale.ModelOptions(**own)
    with pytest.raises(UserError, match=named):
        effscale.build("tiny", "w=0.25,d=0.5,r=16", **kwargs)


@pytest.mark.parametrize("kwargs, named", [
    ({"genotype": "tiny", "variant": "w=0.5,d=0.5,r=32", "weights": "imagenet"}, "efficientnet-b0"),
    ({"weights": "imagenet", "classes": 10}, "classes=1000"),
    ({"weights": "no/such/file.weights.h5"}, "does not exist"),
    ({"weights": 3}, "weights must be"),
])
def test_bad_weights_arguments(kwargs, named):
    with pytest.raises(UserError, match=named):
        effscale.build(**kwargs)


def test_input_tensor_is_the_models_input():
    image = keras.Input((32, 32, 3))
    model = effscale.build("tiny", "w=0.5,d=0.5,r=32", classes=4, input_tensor=image)
    assert model.inputs[0] is image and model.input_shape == (None, 32, 32, 3)
