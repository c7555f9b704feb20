"""The effscale oracles on a cheap deterministic stand-in objective (no training): selection
and mutation beat random search, state survives save / reload and truncated files."""

import json
import os

import keras_tuner
import numpy as np
import pytest
from keras_tuner.engine import base_tuner

from effscale.io import read_json
from effscale.search.oracles import RegularizedEvolutionOracle, ReinforceOracle
from effscale.search import make_oracle
from effscale.search.space import SearchSpace, sample_values

SPACE = SearchSpace("tiny")
HIDDEN = sample_values(SPACE.hyperparameters(), np.random.default_rng(12345))


def stand_in(values: dict) -> float:
    """A fixed function of the genotype: the share of the hidden genotype's choices it makes."""
    genotype = SPACE.to_genotype(values)  # only valid genotypes score
    assert genotype is not None
    return sum(values.get(k) == v for k, v in HIDDEN.items()) / len(HIDDEN)


class StandInTuner(base_tuner.BaseTuner):
    def __init__(self, oracle, directory, fail=None, **kwargs):
        self.fail = fail
        super().__init__(oracle=oracle, directory=str(directory), project_name="p", **kwargs)

    def run_trial(self, trial):
        values = trial.hyperparameters.values
        if self.fail and self.fail(values):
            raise keras_tuner.errors.FailedTrialError("rejected before training: stand-in limit")
        return {"reward": stand_in(values)}


def best_reward(oracle) -> float:
    return max(t.score for t in oracle.trials.values() if t.status == "COMPLETED")


def run(name, seed, directory, trials=60, **options):
    oracle = make_oracle(name, trials, SPACE.hyperparameters(), seed=seed, **options)
    oracle.verbose = 0
    tuner = StandInTuner(oracle, directory)
    tuner.search()
    return oracle


def test_evolution_beats_random_search_on_a_deterministic_stand_in(tmp_path):
    seeds = range(8)
    evolution = [best_reward(run("evolution", s, tmp_path / f"e{s}")) for s in seeds]
    random = [best_reward(run("random", s, tmp_path / f"r{s}")) for s in seeds]
    print(f"\nmean best reward over {len(seeds)} seeds, 60 trials: evolution {np.mean(evolution):.3f} "
          f"random {np.mean(random):.3f}")
    assert np.mean(evolution) > np.mean(random) + 0.05
    assert sum(e > r for e, r in zip(evolution, random)) >= 6


def test_reinforce_controller_moves_towards_the_rewarded_choices(tmp_path):
    oracle = run("reinforce", 0, tmp_path, trials=80, learning_rate=1.0)
    probabilities = oracle.probabilities()
    gains = [probabilities[name][list(SPACE.choices(name)).index(value)] - 1 / len(probabilities[name])
             for name, value in HIDDEN.items()]
    print(f"\nmean probability gain of the hidden genotype's choices: {np.mean(gains):.3f}")
    assert oracle.updates == 80
    assert np.mean(gains) > 0.02  # the hidden genotype's choices gained probability on average


def test_evolution_population_ages_and_never_holds_failed_trials(tmp_path):
    oracle = make_oracle("evolution", 30, SPACE.hyperparameters(), seed=3, population_size=6, sample_size=2)
    oracle.verbose = 0
    tuner = StandInTuner(oracle, tmp_path, fail=lambda v: v.get("stage1/block") == "dsconv")
    tuner.search()
    failed = {t.trial_id for t in oracle.trials.values() if t.status == "FAILED"}
    completed = [i for i in oracle.end_order if oracle.trials[i].status == "COMPLETED"]
    assert failed and len(oracle.trials) == 30  # failures did not stop the search
    assert [m["trial_id"] for m in oracle.population] == completed[-6:]  # the 6 youngest, oldest first
    assert not failed & {m["trial_id"] for m in oracle.population}
    assert all("rejected before training" in oracle.trials[i].message for i in failed)


@pytest.mark.parametrize("name", ["evolution", "reinforce"])
def test_state_round_trips_and_a_reloaded_oracle_proposes_the_same_next_candidates(tmp_path, name):
    oracle = run(name, 1, tmp_path / "a", trials=12)
    state = json.loads(json.dumps(oracle.get_state()))
    twin = make_oracle(name, 16, SPACE.hyperparameters(), seed=1)
    twin._set_project_dir(str(tmp_path / "a"), "p")
    twin.trials = dict(oracle.trials)
    twin.set_state(state)
    if name == "evolution":
        assert twin.population == oracle.population and len(twin.population) > 0
    else:
        assert twin.logits == oracle.logits and twin.baseline == oracle.baseline and twin.updates == 12
    oracle.max_trials = 16
    a = [oracle.populate_space(str(i))["values"] for i in range(12, 16)]
    b = [twin.populate_space(str(i))["values"] for i in range(12, 16)]
    assert a == b


@pytest.mark.parametrize("name", ["evolution", "reinforce"])
def test_resume_survives_truncated_state_files(tmp_path, name):
    oracle = run(name, 2, tmp_path, trials=8)
    saved = read_json(os.path.join(tmp_path, "p", "oracle.json"))
    # A kill in the middle of a non-atomic write leaves half a file behind.
    for path in (os.path.join(tmp_path, "p", "oracle.json"), os.path.join(tmp_path, "p", "trial_5", "trial.json")):
        with open(path) as handle:
            text = handle.read()
        with open(path, "w") as handle:
            handle.write(text[: len(text) // 2])
    resumed = make_oracle(name, 12, SPACE.hyperparameters(), seed=2)
    resumed.verbose = 0
    tuner = StandInTuner(resumed, tmp_path)
    assert len(resumed.repaired) == 2
    assert resumed.trials["5"].status == "FAILED"
    assert [resumed.trials[i].score for i in ("0", "1", "7")] == [oracle.trials[i].score for i in ("0", "1", "7")]
    if name == "evolution":  # rebuilt from the trials: the youngest completed, trial 5 now FAILED
        expected = [m for m in saved["evolution"]["population"] if m["trial_id"] != "5"]
        assert [m["trial_id"] for m in resumed.population][-len(expected):] == [m["trial_id"] for m in expected]
    else:  # replayed: same number of updates, trial 5 teaching the failed reward instead
        assert resumed.updates == saved["reinforce"]["updates"]
    tuner.search()
    assert len(resumed.trials) == 12 and all(t.status in ("COMPLETED", "FAILED") for t in resumed.trials.values())
    read_json(os.path.join(tmp_path, "p", "oracle.json"))  # whole again


def test_oracle_arguments_are_checked():
    from effscale.errors import UserError

    with pytest.raises(UserError):
        RegularizedEvolutionOracle(objective=keras_tuner.Objective("reward", "max"), population_size=1)
    with pytest.raises(UserError):
        RegularizedEvolutionOracle(objective=keras_tuner.Objective("reward", "max"), population_size=4,
                                   sample_size=5)
    with pytest.raises(UserError):
        ReinforceOracle(objective=keras_tuner.Objective("reward", "max"), learning_rate=-1)
    with pytest.raises(UserError):
        make_oracle("annealing", 5, SPACE.hyperparameters())
