"""The multi-fidelity (ASHA) oracle's own rules: promotion only from the top 1/eta of a rung,
each architecture at most once per rung, the top rung at the final schedule, and new candidates
proposed by the predictor rather than at random."""

import hashlib
import os

import keras_tuner
import numpy as np
import pytest
from keras_tuner.engine import base_tuner

from effscale.common.errors import UserError
from effscale.search import make_oracle
from effscale.search.oracles import SuccessiveHalvingOracle
from effscale.search.oracles.halving import promotable, rung_epochs
from effscale.search.space import SearchSpace, sample_values

SPACE = SearchSpace("tiny")
HIDDEN = sample_values(SPACE.hyperparameters(), np.random.default_rng(7))


def architecture(values: dict) -> dict:
    return {k: v for k, v in values.items() if not k.startswith("tuner/")}


def score(values: dict) -> float:
    """A fidelity-aware stand-in: the share of the hidden genotype's choices, learnt more fully at
    more epochs, plus a fixed pseudo-random wobble per (architecture, epochs)."""
    arch = architecture(values)
    share = sum(arch.get(k) == v for k, v in HIDDEN.items()) / len(HIDDEN)
    epochs = values["tuner/epochs"]
    wobble = int(hashlib.sha256(f"{sorted(arch.items())}{epochs}".encode()).hexdigest()[:8], 16) / 16 ** 8
    return share * (1 - 0.5 / epochs) + 0.05 * wobble


class StandInTuner(base_tuner.BaseTuner):
    def run_trial(self, trial):
        return {"reward": score(trial.hyperparameters.values)}


def search(tmp_path, trials=40, seed=0, **options):
    oracle = make_oracle("asha", trials, SPACE.hyperparameters(), seed=seed, epochs=9, **options)
    oracle.verbose = 0
    StandInTuner(oracle=oracle, directory=str(tmp_path), project_name="p").search()
    return oracle


def test_a_candidate_is_promoted_only_from_the_top_of_its_rung_and_the_top_rung_is_the_final_schedule(tmp_path):
    oracle = search(tmp_path, eta=3)
    assert oracle.rungs == (1, 3, 9)
    trials = sorted(oracle.trials.values(), key=lambda t: int(t.trial_id))
    assert all(t.status == "COMPLETED" for t in trials)
    seen = {}  # (rung, architecture) -> trial
    promotions = 0
    for trial in trials:
        values = trial.hyperparameters.values
        rung, key = values["tuner/rung"], str(sorted(architecture(values).items()))
        assert values["tuner/epochs"] == oracle.rungs[rung]
        assert (rung, key) not in seen, "an architecture trained twice at one rung"
        seen[(rung, key)] = trial
        if rung == 0:
            assert "tuner/parent" not in values
            continue
        promotions += 1
        parent = oracle.trials[values["tuner/parent"]]
        assert architecture(parent.hyperparameters.values) == architecture(values)
        assert parent.hyperparameters.values["tuner/rung"] == rung - 1
        # The trials run one at a time: the rung below's results when this one was proposed.
        below = [t for t in trials if int(t.trial_id) < int(trial.trial_id)
                 and t.hyperparameters.values["tuner/rung"] == rung - 1]
        top = sorted(below, key=lambda t: -t.score)[: len(below) // 3]
        assert parent in top, f"trial {trial.trial_id} promoted from outside the top third of rung {rung - 1}"
    top_rung = [t for t in trials if t.hyperparameters.values["tuner/rung"] == 2]
    assert top_rung and all(t.hyperparameters.values["tuner/epochs"] == 9 for t in top_rung)
    assert promotions >= 5
    # The best result is a top-rung one: the final schedule is what the search reports.
    assert max(trials, key=lambda t: t.score) in top_rung


@pytest.mark.slow
def test_new_candidates_come_from_the_predictor_and_beat_random_ones(tmp_path):
    """After ``initial_points`` results at the cheapest rung, new candidates are the predictor's
    picks: over 4 seeds the best score is higher than random search's at the same number of
    trainings, every one of random search's at the final schedule."""
    def best(oracle):
        return max(t.score for t in oracle.trials.values())

    asha = [best(search(tmp_path / f"a{s}", trials=40, seed=s, eta=3)) for s in range(4)]
    randoms = []
    for s in range(4):
        oracle = make_oracle("random", 40, SPACE.hyperparameters(), seed=s)
        oracle.verbose = 0

        class AtNine(base_tuner.BaseTuner):
            def run_trial(self, trial):
                return {"reward": score({**trial.hyperparameters.values, "tuner/epochs": 9})}

        AtNine(oracle=oracle, directory=str(tmp_path / f"r{s}"), project_name="p").search()
        randoms.append(best(oracle))
    print(f"\nbest score, 40 trainings: asha {np.mean(asha):.3f} random (all at 9 epochs) {np.mean(randoms):.3f}")
    assert np.mean(asha) > np.mean(randoms)


def test_ladder_helpers_and_arguments():
    assert rung_epochs(15, 3) == (1, 5, 15) and rung_epochs(9, 3) == (1, 3, 9) and rung_epochs(2, 2) == (1, 2)
    assert rung_epochs(1) == (1,) and rung_epochs(10, 3, 2) == (2, 3, 10)
    assert promotable([("a", 0.1), ("b", 0.2)], 3, set()) is None  # fewer than eta results: nothing yet
    assert promotable([("a", 0.1), ("b", 0.2), ("c", 0.3), ("d", 0.4), ("e", 0.5), ("f", 0.0)], 3, {"e"}) == "d"
    objective = keras_tuner.Objective("reward", "max")
    for bad in ({"eta": 1}, {"max_epochs": 0}, {"min_epochs": 5, "max_epochs": 3}, {"eta": 2.5}):
        with pytest.raises(UserError):
            SuccessiveHalvingOracle(objective=objective, **bad)


def test_a_project_resumed_with_another_ladder_is_refused(tmp_path):
    oracle = search(tmp_path, trials=6, eta=3)
    state = oracle.get_state()
    other = make_oracle("asha", 6, SPACE.hyperparameters(), seed=0, epochs=4, eta=2)
    with pytest.raises(UserError, match="rungs"):
        other.set_state(state)


def test_a_family_search_with_asha_tops_out_at_the_members_training_epochs(tmp_path):
    from effscale.family.config import FamilyConfig

    base = {"dataset": "digits", "baseline": "tiny", "training": {"epochs": 7}}
    config = FamilyConfig.from_dict({**base, "search": {"oracle": "asha", "trials": 5}})
    assert config.search.search_config().oracle_options["max_epochs"] == 7
    given = FamilyConfig.from_dict({**base, "search": {"oracle": "asha", "oracle_options": {"max_epochs": 3}}})
    assert given.search.oracle_options["max_epochs"] == 3
    other = FamilyConfig.from_dict({**base, "search": {"oracle": "evolution"}})
    assert "max_epochs" not in other.search.oracle_options
    assert config.search.top_rung_augment is None  # members without augmentation: none at the top rung
    augmented = FamilyConfig.from_dict({**base, "search": {"oracle": "asha"},
                                        "training": {"epochs": 7, "augment": "padded-crop"}})
    assert augmented.search.search_config().top_rung_augment == "padded-crop"
    assert FamilyConfig.from_dict({**base, "search": {"oracle": "evolution"},
                                   "training": {"epochs": 7, "augment": "padded-crop"}}).search.top_rung_augment is None


MICRO = "stem8_head32_res16_relu-mb_r1_k3_s2_e2_c8-mb_r1_k3_s2_e2_c16"


def test_the_top_rung_trains_on_augmented_images_and_no_other_rung_does(tmp_path):
    """``top_rung_augment``: the trainings at the oracle's ``max_epochs`` see padded-crop images
    (stored apart, and their batches differ from the plain ones in pixels, not in labels or order);
    the cheaper rungs train on the plain images."""
    from effscale.search import SearchConfig, run_search
    from effscale.search.assembly import assemble

    options = {"initial_points": 2, "eta": 2}
    result = run_search(MICRO, oracle="asha", cost="macs", target=1e5, trials=3, epochs=2, dataset="digits",
                        project_dir=str(tmp_path / "search"), seed=0, verbose=0, oracle_options=options,
                        top_rung_augment="padded-crop")
    assert [t["epochs"] for t in result.trials] == [1, 1, 2]
    files = sorted(os.listdir(tmp_path / "search" / "trainings"))
    assert sorted(f.split("-e", 1)[1] for f in files) == ["1-s0.json", "1-s0.json", "2-padded-crop-s0.json"]
    config = SearchConfig(MICRO, oracle="asha", epochs=2, dataset="digits", oracle_options=options,
                          top_rung_augment="padded-crop")
    runner = assemble(config, str(tmp_path / "unused")).runner
    assert runner.top_rung == (2, "padded-crop")
    plain_images, plain_labels = next(iter(runner.data.train))
    images, labels = next(iter(runner.augmented_data("padded-crop").train))
    np.testing.assert_array_equal(labels.numpy(), plain_labels.numpy())
    assert images.shape == plain_images.shape and not np.allclose(images.numpy(), plain_images.numpy())
    # a search saved without the key reads back as one without augmentation; a bad value is refused
    assert SearchConfig.from_record({k: v for k, v in config.resolve(10).record.to_dict().items()
                                     if k != "top_rung_augment"}).top_rung_augment is None
    for bad in ({"top_rung_augment": "mixup"}, {"top_rung_augment": "padded-crop", "oracle": "random"}):
        with pytest.raises(UserError, match="top_rung_augment"):
            SearchConfig(MICRO, **{"oracle": "asha", **bad})
