"""The cheaper trial path computes what the old one did: the same batches in the same order from
the in-memory splits, and the same seeded trial results (EFFSCALE_TRIAL_PATH=old selects the old path)."""

import numpy as np
import pytest

from effscale.common.errors import UserError
from effscale.data.pipeline import DataSpec, load_data, to_numpy
from effscale.search.proxy import ProxySettings, reshuffled, trial_path

MICRO = "stem8_head32_res16_relu-mb_r1_k3_s2_e2_c8_se0.25-mb_r1_k3_s2_e2_c16"


def _passes(dataset, count):
    return [to_numpy(dataset) for _ in range(count)]


@pytest.mark.parametrize("source, fraction", [("digits", None), ("digits", 0.5)])
def test_in_memory_splits_give_the_same_batches_in_the_same_order(source, fraction):
    import keras

    keras.utils.set_random_seed(3)
    old = load_data(DataSpec(source, resolution=12, train_fraction=fraction), batch_size=32, shuffle_seed=5)
    keras.utils.set_random_seed(3)
    new = load_data(DataSpec(source, resolution=12, train_fraction=fraction), batch_size=32, shuffle_seed=5,
                    in_memory=True)
    assert new.memory and not old.memory
    assert new.train_size == old.train_size and new.validation_size == old.validation_size
    for (xo, yo), (xn, yn) in zip(_passes(old.train, 3), _passes(new.train, 3)):  # each pass reshuffled
        np.testing.assert_array_equal(yo, yn)
        np.testing.assert_array_equal(xo, xn)
    first = to_numpy(new.train)[1]
    assert not np.array_equal(first, to_numpy(new.train)[1])  # another order every pass, as before
    _passes(old.train, 2)  # as many passes on both: a pass advances the shuffle that reshuffled() reads
    for a, b in zip(to_numpy(old.validation), to_numpy(new.validation)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(to_numpy(reshuffled(old, 11).train), to_numpy(reshuffled(new, 11).train)):
        np.testing.assert_array_equal(a, b)
    assert [tuple(x.shape) for x, _ in new.train][0] == (32, 12, 12, 3)


def _runner(settings):
    from effscale.search.objectives import Limits, Reward
    from effscale.search.space import SearchSpace
    from effscale.search.trial import TrialRunner

    space = SearchSpace(MICRO, open=("kernel",))
    return space, TrialRunner(space, Reward("macs", 1e5), Limits(), settings, DataSpec("digits", resolution=8),
                              1.0, 1.0, seeds=2)


def _trials(monkeypatch, path):
    import keras

    monkeypatch.setenv("EFFSCALE_TRIAL_PATH", path)
    keras.utils.set_random_seed(0)  # the data order depends on the global seed when it is made
    space, runner = _runner(ProxySettings(epochs=1, seed=0))
    runner.timings = {}
    values = [space.hyperparameters().values, {**space.hyperparameters().values, "stage1/kernel": 5}]
    return [runner.run(v) for v in values], runner.timings


@pytest.mark.slow
def test_a_seeded_trial_gives_the_same_result_on_both_paths(monkeypatch):
    old, old_times = _trials(monkeypatch, "old")
    new, new_times = _trials(monkeypatch, "new")
    assert [m["accuracy_seed0"] for m in new] == [m["accuracy_seed0"] for m in old]
    assert [m["accuracy_seed1"] for m in new] == [m["accuracy_seed1"] for m in old]
    assert [m["val_loss"] for m in new] == pytest.approx([m["val_loss"] for m in old], rel=1e-6, abs=1e-7)
    for times in (old_times, new_times):  # the phases a benchmark reads were all timed
        assert {"data", "build", "compile", "first_step", "steps", "evaluation", "fit_other"} <= set(times)
        assert all(v >= 0 for v in times.values())


def test_an_unknown_trial_path_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("EFFSCALE_TRIAL_PATH", "fast")
    with pytest.raises(UserError, match="EFFSCALE_TRIAL_PATH='fast': expected one of new, old"):
        trial_path()
