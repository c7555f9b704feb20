"""The effscale oracles on a cheap deterministic stand-in objective (no training): selection
and mutation beat random search, state survives save / reload and truncated files."""

import json
import os

import keras_tuner
import numpy as np
import pytest
from keras_tuner.engine import base_tuner

from effscale.common.io import read_json
from effscale.search import _keras_tuner as internals
from effscale.search.oracles import RegularizedEvolutionOracle, ReinforceOracle
from effscale.search import make_oracle
from effscale.search.space import SearchSpace, sample_values
from effscale.search.tabular import run_oracle

SPACE = SearchSpace("tiny")
HIDDEN = sample_values(SPACE.hyperparameters(), np.random.default_rng(12345))


def stand_in(values: dict) -> float:
    """A fixed function of the genotype: the share of the hidden genotype's choices it makes."""
    genotype = SPACE.to_genotype(values)  # only valid genotypes score
    assert genotype is not None
    return sum(values.get(k) == v for k, v in HIDDEN.items()) / len(HIDDEN)


class StandInTuner(base_tuner.BaseTuner):
    def __init__(self, oracle, directory, fail=None, scale=1.0, **kwargs):
        self.fail, self.scale = fail, scale
        super().__init__(oracle=oracle, directory=str(directory), project_name="p", **kwargs)

    def run_trial(self, trial):
        values = trial.hyperparameters.values
        if self.fail and self.fail(values):
            raise keras_tuner.errors.FailedTrialError("rejected before training: stand-in limit")
        return {"reward": self.scale * stand_in(values)}


def best_reward(oracle) -> float:
    return max(t.score for t in oracle.trials.values() if t.status == "COMPLETED")


# What an oracle needs beyond its name to be more than a degenerate case: ASHA a ladder of rungs
# (1, 2 and 4 epochs).
LADDER = {"asha": {"epochs": 4, "eta": 2, "initial_points": 4}}


def run(name, seed, directory, trials=60, scale=1.0, **options):
    oracle = make_oracle(name, trials, SPACE.hyperparameters(), seed=seed, **{**LADDER.get(name, {}), **options})
    oracle.verbose = 0
    tuner = StandInTuner(oracle, directory, scale=scale)
    tuner.search()
    return oracle


@pytest.mark.slow
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


def _proposals(oracle):
    return [oracle.trials[i].hyperparameters.values for i in oracle.start_order]


def test_reinforce_learns_the_same_from_a_fraction_and_a_percentage(tmp_path):
    fraction = run("reinforce", 4, tmp_path / "fraction", trials=40)
    percent = run("reinforce", 4, tmp_path / "percent", trials=40, scale=100.0)
    assert _proposals(fraction) == _proposals(percent)  # the same search, candidate by candidate
    for name, logits in fraction.logits.items():
        np.testing.assert_allclose(percent.logits[name], logits, rtol=1e-9, atol=1e-12)
    assert percent.baseline == pytest.approx(100 * fraction.baseline)
    gains = [fraction.probabilities()[n][list(SPACE.choices(n)).index(v)] - 1 / len(SPACE.choices(n))
             for n, v in HIDDEN.items()]
    assert np.mean(gains) > 0  # and it learned something
    # The raw advantage (the old update) is not scale-free: the percentage run diverges.
    raw = run("reinforce", 4, tmp_path / "raw1", trials=15, normalize=False)
    raw_percent = run("reinforce", 4, tmp_path / "raw100", trials=15, scale=100.0, normalize=False)
    assert _proposals(raw) != _proposals(raw_percent)


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


# The oracles effscale implements itself (the others are Keras Tuner's, tested upstream).
OWN = ["evolution", "reinforce", "predictor", "asha", "bayesian-sampled"]


@pytest.mark.parametrize("name", OWN)
def test_state_round_trips_and_a_reloaded_oracle_proposes_the_same_next_candidates(tmp_path, name):
    oracle = run(name, 1, tmp_path / "a", trials=12)
    state = json.loads(json.dumps(oracle.get_state()))
    twin = make_oracle(name, 16, SPACE.hyperparameters(), seed=1, **LADDER.get(name, {}))
    internals.set_project_dir(twin, str(tmp_path / "a"), "p")
    twin.trials = dict(oracle.trials)
    twin.set_state(state)
    if name == "evolution":
        assert twin.population == oracle.population and len(twin.population) > 0
    elif name == "reinforce":
        assert twin.logits == oracle.logits and twin.baseline == oracle.baseline and twin.updates == 12
    elif name in ("predictor", "asha"):
        assert twin._rng.bit_generator.state == oracle._rng.bit_generator.state
        if name == "asha":
            assert twin.rungs == oracle.rungs == (1, 2, 4)
            assert {t.hyperparameters.values["tuner/rung"] for t in oracle.trials.values()} == {0, 1, 2}
    else:
        assert twin.num_initial_points == oracle.num_initial_points == 3  # past it: the GP proposes
        assert internals.random_state(twin).get_state(legacy=False)["state"]["pos"] == \
            internals.random_state(oracle).get_state(legacy=False)["state"]["pos"]
    oracle.max_trials = 16
    a = [oracle.populate_space(str(i))["values"] for i in range(12, 16)]
    b = [twin.populate_space(str(i))["values"] for i in range(12, 16)]
    assert a == b


@pytest.mark.parametrize("name", OWN)
def test_resume_survives_truncated_state_files(tmp_path, name):
    oracle = run(name, 2, tmp_path, trials=8)
    saved = read_json(os.path.join(tmp_path, "p", "oracle.json"))
    # A kill in the middle of a non-atomic write leaves half a file behind.
    for path in (os.path.join(tmp_path, "p", "oracle.json"), os.path.join(tmp_path, "p", "trial_5", "trial.json")):
        with open(path) as handle:
            text = handle.read()
        with open(path, "w") as handle:
            handle.write(text[: len(text) // 2])
    resumed = make_oracle(name, 12, SPACE.hyperparameters(), seed=2, **LADDER.get(name, {}))
    resumed.verbose = 0
    tuner = StandInTuner(resumed, tmp_path)
    assert len(resumed.repaired) == 2
    assert resumed.trials["5"].status == "FAILED"
    assert [resumed.trials[i].score for i in ("0", "1", "7")] == [oracle.trials[i].score for i in ("0", "1", "7")]
    if name == "evolution":  # rebuilt from the trials: the youngest completed, trial 5 now FAILED
        expected = [m for m in saved["evolution"]["population"] if m["trial_id"] != "5"]
        assert [m["trial_id"] for m in resumed.population][-len(expected):] == [m["trial_id"] for m in expected]
    elif name == "reinforce":  # replayed: same number of updates, trial 5 teaching the failed reward instead
        assert resumed.updates == saved["reinforce"]["updates"]
    tuner.search()
    assert len(resumed.trials) == 12 and all(t.status in ("COMPLETED", "FAILED") for t in resumed.trials.values())
    read_json(os.path.join(tmp_path, "p", "oracle.json"))  # whole again


@pytest.mark.parametrize("acquisition", ["ucb", "thompson"])
def test_predictor_beats_random_search_on_the_stand_in(acquisition):
    """In memory (no state files): the predictor's proposals come from a model of the stand-in,
    whichever acquisition ranks them."""
    class StandIn:
        def evaluate(self, values, reward=None):
            return {"reward": stand_in(values)}

    def best(name, seed, **options):
        oracle = make_oracle(name, 30, SPACE.hyperparameters(), seed=seed, **options)
        internals.keep_in_memory(oracle)
        return max(r["reward"] for r in run_oracle(oracle, StandIn(), 30))

    predictor = [best("predictor", s, acquisition=acquisition) for s in range(3)]
    random = [best("random", s) for s in range(3)]
    print(f"\nmean best reward, 30 trials: predictor ({acquisition}) {np.mean(predictor):.3f} "
          f"random {np.mean(random):.3f}")
    assert np.mean(predictor) > np.mean(random) + 0.05 and all(p > r for p, r in zip(predictor, random))


@pytest.mark.parametrize("name", OWN)
def test_chief_serves_the_oracle_to_two_workers_over_grpc(name, tmp_path, monkeypatch):
    """Keras Tuner's gRPC chief (effscale's serve_chief) and two worker clients in threads, each
    worker running trials against the stand-in; every trial ends COMPLETED, none repeats."""
    import socket
    import threading

    OracleClient = internals.oracle_client()

    from effscale.search import serve_chief

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for key, value in (("KERASTUNER_ORACLE_IP", "127.0.0.1"), ("KERASTUNER_ORACLE_PORT", str(port)),
                       ("KERASTUNER_TUNER_ID", "tuner0")):
        monkeypatch.setenv(key, value)
    options = {"predictor": {"initial_points": 4}, "bayesian-sampled": {"num_initial_points": 4},
               "evolution": {"population_size": 4, "sample_size": 2}, **LADDER}.get(name, {})
    oracle = make_oracle(name, 12, SPACE.hyperparameters(), seed=7, **options)
    internals.set_project_dir(oracle, str(tmp_path), "p")
    oracle.verbose = 0
    chief = threading.Thread(target=serve_chief, args=(oracle, 30.0), kwargs={"poll_s": 0.05})
    chief.start()

    class StandIn:
        def evaluate(self, values, reward=None):
            return {"reward": stand_in(values)}

    records = {}
    workers = [threading.Thread(target=lambda i=i: records.setdefault(i, run_oracle(
        OracleClient(oracle), StandIn(), 50, tuner_id=f"tuner{i}"))) for i in (1, 2)]
    for worker in workers:
        worker.start()
    for thread in workers + [chief]:
        thread.join(timeout=120)
    assert not chief.is_alive(), "the chief did not finish"
    assert sum(len(r) for r in records.values()) == 12 and all(records.values())  # both workers trained
    assert len(oracle.trials) == 12
    assert all(t.status == "COMPLETED" and t.score == stand_in(t.hyperparameters.values)
               for t in oracle.trials.values())
    assert len({json.dumps(t.hyperparameters.values, sort_keys=True) for t in oracle.trials.values()}) == 12


def test_oracle_arguments_are_checked():
    from effscale.common.errors import UserError
    from effscale.search.oracles import PredictorOracle, SampledBayesianOracle

    with pytest.raises(UserError):
        RegularizedEvolutionOracle(objective=keras_tuner.Objective("reward", "max"), population_size=1)
    with pytest.raises(UserError):
        RegularizedEvolutionOracle(objective=keras_tuner.Objective("reward", "max"), population_size=4,
                                   sample_size=5)
    with pytest.raises(UserError):
        ReinforceOracle(objective=keras_tuner.Objective("reward", "max"), learning_rate=-1)
    with pytest.raises(UserError):
        make_oracle("annealing", 5, SPACE.hyperparameters())
    with pytest.raises(UserError, match="initial_points"):
        PredictorOracle(objective=keras_tuner.Objective("reward", "max"), initial_points=1)
    with pytest.raises(UserError, match="exploration"):
        PredictorOracle(objective=keras_tuner.Objective("reward", "max"), exploration=-1)
    with pytest.raises(UserError, match="acquisition"):
        PredictorOracle(objective=keras_tuner.Objective("reward", "max"), acquisition="ei")
    with pytest.raises(UserError, match="candidates"):
        SampledBayesianOracle(objective=keras_tuner.Objective("reward", "max"), candidates=0)
