"""Recipe: typed, serializable, validated; its schedule and optimizer do what it says."""

import json

import keras
import numpy as np
import pytest

from effscale.common.errors import UserError
from effscale.training.recipe import Recipe


def test_round_trip_through_dict_and_json():
    for recipe in (Recipe(), Recipe.efficientnet(), Recipe(optimizer="sgd", schedule="exponential", ema_decay=0.99,
                                                          dropout=0.1, gradient_clip_norm=1.0, epochs=7)):
        assert Recipe.from_dict(recipe.to_dict()) == recipe
        assert Recipe.from_json(recipe.to_json()) == recipe
        assert Recipe.from_dict(json.loads(json.dumps(recipe.to_dict()))) == recipe


def test_defaults_suit_short_runs_and_efficientnet_is_the_paper():
    short = Recipe()
    assert short.bn_momentum == 0.9 and short.ema_decay is None and short.warmup_epochs <= 1
    paper = Recipe.efficientnet()
    assert (paper.optimizer, paper.learning_rate, paper.base_batch, paper.batch_size) == ("rmsprop", 0.016, 256, 4096)
    assert (paper.decay_rate, paper.decay_epochs, paper.warmup_epochs) == (0.97, 2.4, 5)
    assert (paper.label_smoothing, paper.weight_decay, paper.ema_decay, paper.bn_momentum) == (0.1, 1e-5, 0.9999, 0.99)
    assert paper.peak_learning_rate(4096) == pytest.approx(0.256)


@pytest.mark.parametrize("changes, message", [
    ({"optimizer": "lamb"}, "optimizer 'lamb'"),
    ({"schedule": "step"}, "schedule 'step'"),
    ({"epochs": 0}, "epochs"),
    ({"batch_size": -1}, "batch_size"),
    ({"learning_rate": 0.0}, "learning_rate"),
    ({"label_smoothing": 1.0}, "label_smoothing"),
    ({"bn_momentum": 1.0}, "bn_momentum"),
    ({"ema_decay": 1.5}, "ema_decay"),
    ({"batch_scope": "node"}, "batch_scope"),
])
def test_bad_fields_name_themselves(changes, message):
    with pytest.raises(UserError, match=message):
        Recipe(**changes)


def test_unknown_keys_and_bad_json():
    with pytest.raises(UserError, match=r"unknown recipe key\(s\) \['lr'\]"):
        Recipe.from_dict({"lr": 0.1})
    with pytest.raises(UserError, match="does not parse"):
        Recipe.from_json("{")


def _rates(schedule, steps):
    return np.array([float(schedule(step)) for step in steps])


def test_warmup_then_cosine():
    recipe = Recipe(learning_rate=0.032, base_batch=256, warmup_epochs=1, epochs=5, schedule="cosine")
    schedule = recipe.learning_rate_schedule(global_batch=128, steps_per_epoch=10)
    peak = 0.016  # linear scaling to batch 128
    rates = _rates(schedule, range(50))
    # Keras' warm-up: linear from peak / 10 at step 0 to the peak at step 10 (effscale's own
    # schedule before CosineDecay reached it at step 9: rates[9] was the peak)
    assert rates[0] == pytest.approx(peak / 10) and rates[9] == pytest.approx(peak * (0.1 + 0.9 * 0.9))
    assert np.all(np.diff(rates[:10]) > 0)           # warm-up rises
    assert np.allclose(np.diff(rates[:11]), peak * 0.9 / 10)  # ... linearly
    assert rates[10] == pytest.approx(peak)           # cosine starts at the peak
    assert np.all(np.diff(rates[10:]) < 0)            # ... and falls
    assert float(schedule(50)) == pytest.approx(0.0, abs=1e-9)


def test_warmup_then_exponential_staircase():
    recipe = Recipe(learning_rate=0.016, warmup_epochs=0, schedule="exponential", decay_epochs=2.4, decay_rate=0.97)
    schedule = recipe.learning_rate_schedule(global_batch=256, steps_per_epoch=10)
    assert float(schedule(0)) == pytest.approx(0.016) and float(schedule(23)) == pytest.approx(0.016)
    assert float(schedule(24)) == pytest.approx(0.016 * 0.97)
    assert float(schedule(48)) == pytest.approx(0.016 * 0.97 ** 2)
    constant = Recipe(schedule="constant", warmup_epochs=0).learning_rate_schedule(256, 10)
    assert float(constant(0)) == float(constant(1000)) == pytest.approx(0.016)


def test_warmup_then_exponential_staircase_after_warmup():
    recipe = Recipe(learning_rate=0.016, warmup_epochs=1, schedule="exponential", decay_epochs=2.4, decay_rate=0.97)
    schedule = recipe.learning_rate_schedule(global_batch=256, steps_per_epoch=10)
    rates = _rates(schedule, range(11))
    assert rates[0] == pytest.approx(0.0016) and np.allclose(np.diff(rates), 0.0016 * 0.9)
    assert float(schedule(33)) == pytest.approx(0.016) and float(schedule(34)) == pytest.approx(0.016 * 0.97)
    again = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert type(again) is type(schedule) and float(again(5)) == pytest.approx(float(schedule(5)))


def test_the_removed_old_schedule_name_is_no_longer_registered():
    recipe = Recipe(learning_rate=0.032, warmup_epochs=1, epochs=5, min_learning_rate_ratio=0.1)
    recipe.make_optimizer(global_batch=128, steps_per_epoch=10)  # registers effscale's schedule names
    assert keras.saving.get_registered_object("effscale>WarmupExponentialDecay") is not None
    assert keras.saving.get_registered_object("effscale>WarmupSchedule") is None


def test_schedule_serializes_with_the_optimizer():
    optimizer = Recipe(ema_decay=0.99).make_optimizer(global_batch=64, steps_per_epoch=5)
    config = keras.optimizers.serialize(optimizer)
    again = keras.optimizers.deserialize(config)
    assert float(again.learning_rate) == pytest.approx(float(optimizer.learning_rate))


@pytest.mark.parametrize("name, cls", [("rmsprop", keras.optimizers.RMSprop), ("sgd", keras.optimizers.SGD),
                                       ("adam", keras.optimizers.Adam)])
def test_optimizers(name, cls):
    optimizer = Recipe(optimizer=name, ema_decay=0.999, weight_decay=1e-4).make_optimizer(64, 10)
    assert isinstance(optimizer, cls) and optimizer.use_ema and optimizer.ema_momentum == 0.999
    assert optimizer.weight_decay == pytest.approx(1e-4)
