"""Prescreening: each trial trains only the best-scored of N untried candidates, checked from the
recorded trials and prescreen log; the log survives a resume. First with a plain-Python score
(as the tabular study drives the oracles), then through real searches with zero-cost proxies."""

import json
import os

import keras_tuner
import pytest
from keras_tuner.engine import base_tuner

from effscale.model.cost import cost
from effscale.common.errors import UserError
from effscale.search import load_oracle, load_trials, make_oracle, run_search
from effscale.search.space import SearchSpace

# No conditional choices: a mutation changes exactly one value.
SPACE = SearchSpace("tiny", open=("kernel", "expand", "se", "repeats"))
MICRO = "stem8_head32_res16_relu-mb_r1_k3_s2_e2_c8-mb_r1_k3_s2_e2_c16"


def stand_in_score(values_list):
    """A cheap deterministic score: larger kernels and expansions score higher."""
    return [sum(v for k, v in values.items() if k.endswith(("/kernel", "/expand"))) + 0.01 * len(json.dumps(values))
            for values in values_list]


class StandInTuner(base_tuner.BaseTuner):
    def run_trial(self, trial):
        return {"reward": stand_in_score([trial.hyperparameters.values])[0] % 1.0}


def search(name, directory, trials, n=4, **options):
    oracle = make_oracle(name, trials, SPACE.hyperparameters(), seed=3, prescreen=(stand_in_score, n), **options)
    oracle.verbose = 0
    StandInTuner(oracle=oracle, directory=str(directory), project_name="p").search()
    return oracle


def check_log(log, trials, n, scores_of=None):
    """Every trial is the top-scored candidate of its own prescreen, and no other candidate trained."""
    trained = {t.trial_id: t.hyperparameters.values for t in trials}
    assert sorted(e["trial_id"] for e in log) == sorted(trained)
    tried = []
    for entry in sorted(log, key=lambda e: int(e["trial_id"])):
        candidates = [c["values"] for c in entry["candidates"]]
        scores = [c["score"] for c in entry["candidates"]]
        assert len(candidates) == n and len({json.dumps(c, sort_keys=True) for c in candidates}) == n
        assert not any(c in tried for c in candidates)  # drawn untried
        if scores_of:
            assert scores == pytest.approx(scores_of(candidates))
        assert entry["chosen"] == scores.index(max(scores))
        assert trained[entry["trial_id"]] == candidates[entry["chosen"]]
        tried.append(trained[entry["trial_id"]])
    # A candidate a prescreen passed over was not trained then; it may train only in a later
    # trial whose own prescreen drew it again (it stays untried) and chose it.
    for entry in log:
        for i, c in enumerate(entry["candidates"]):
            if i != entry["chosen"] and c["values"] in trained.values():
                later = [e for e in log if trained[e["trial_id"]] == c["values"]]
                assert len(later) == 1 and int(later[0]["trial_id"]) > int(entry["trial_id"])


@pytest.mark.parametrize("name", ["random", "evolution"])
def test_each_trial_is_the_best_scored_candidate_and_the_log_survives_resume(tmp_path, name):
    options = {"population_size": 3, "sample_size": 2} if name == "evolution" else {}
    oracle = search(name, tmp_path, 8, **options)
    check_log(oracle.prescreen_log, oracle.trials.values(), 4, stand_in_score)
    if name == "evolution":  # after the random phase every candidate is one mutation of one member
        for entry in oracle.prescreen_log[3:]:
            earlier = [oracle.trials[t].hyperparameters.values for t in oracle.end_order
                       if int(t) < int(entry["trial_id"])]
            assert any(all(sum(c["values"][k] != p[k] for k in p) == 1 for c in entry["candidates"])
                       for p in earlier), entry
    saved = json.loads(json.dumps(oracle.prescreen_log))
    resumed = search(name, tmp_path, 11, **options)  # same project: reloads, then 3 more trials
    assert resumed.prescreen_log[:8] == saved and len(resumed.prescreen_log) == 11
    check_log(resumed.prescreen_log, resumed.trials.values(), 4, stand_in_score)


def test_a_cost_aware_prescreen_stays_within_budget_where_a_raw_score_does_not(tmp_path):
    """Stand-in: accuracy grows with kernels and expansions (so does the raw score, like the
    zero-cost proxies, which track size), the reward is MnasNet's hard constraint on exact
    multiply-adds. The raw score picks over-budget candidates; the predicted reward
    (:class:`PredictedReward`) picks, whenever it had one, a candidate within the budget."""
    import numpy as np

    from effscale.search.objectives import Reward
    from effscale.search.oracles.prescreen import PredictedReward
    from effscale.search import analytic_costs

    def macs(values):
        return analytic_costs(SPACE.to_genotype(values), 10)["macs"]

    def accuracy(values):
        return 0.5 + 0.01 * sum(v for k, v in values.items() if k.endswith(("/kernel", "/expand")))

    rng = np.random.default_rng(0)
    budget = float(np.median([macs(SPACE.random_values(rng)) for _ in range(40)]))
    reward = Reward("macs", budget, "hard")

    class Tuner(base_tuner.BaseTuner):
        def run_trial(self, trial):
            values = trial.hyperparameters.values
            return {"reward": reward(accuracy(values), macs(values))}

    def raw_score(candidates):
        return [accuracy(c) for c in candidates]

    chosen = {}
    for label, score in (("raw", raw_score), ("cost-aware", PredictedReward(SPACE.hyperparameters(), macs, reward))):
        oracle = make_oracle("random", 12, SPACE.hyperparameters(), seed=5, prescreen=(score, 6))
        oracle.verbose = 0
        Tuner(oracle=oracle, directory=str(tmp_path), project_name=label).search()
        # (over budget?, was any candidate within budget?) per prescreen
        chosen[label] = [(macs(e["candidates"][e["chosen"]]["values"]) > budget,
                          any(macs(c["values"]) <= budget for c in e["candidates"])) for e in oracle.prescreen_log]
        assert len(chosen[label]) == 12
    assert sum(over for over, _ in chosen["raw"]) >= 6  # the raw score goes for the largest
    assert not any(over and could for over, could in chosen["cost-aware"])
    assert sum(could for _, could in chosen["cost-aware"]) >= 10


def test_only_random_and_evolution_prescreen():
    for name in ("reinforce", "bayesian", "hyperband"):
        with pytest.raises(UserError, match="does not prescreen"):
            make_oracle(name, 4, SPACE.hyperparameters(), prescreen=(stand_in_score, 3))
    with pytest.raises(UserError, match="positive integer"):
        make_oracle("random", 4, SPACE.hyperparameters(), prescreen=(stand_in_score, 0))


def test_run_search_prescreen_arguments_are_checked_before_the_project_dir_is_touched(tmp_path):
    directory = tmp_path / "p"
    with pytest.raises(UserError, match="oracle 'reinforce' does not prescreen"):
        run_search(MICRO, oracle="reinforce", prescreen="params:3", project_dir=str(directory), verbose=0)
    with pytest.raises(UserError, match="expected PROXY:N"):
        run_search(MICRO, oracle="random", prescreen="params", project_dir=str(directory), verbose=0)
    assert not directory.exists()


def _search(directory, oracle, trials, prescreen, **options):
    return run_search(MICRO, oracle=oracle, trials=trials, epochs=1, resolution=8, width=0.5, verbose=0,
                      project_dir=str(directory), open_choices=("kernel", "expand", "se", "repeats"),
                      prescreen=prescreen, **options)


def _check_search(directory, n, scores_of=None):
    log = json.load(open(directory / "prescreen.json"))
    trials = load_trials(str(directory))
    assert trials and all(t.status == "COMPLETED" for t in trials)
    check_log(log["log"], trials, n, scores_of)
    for trial in trials:  # the trained candidate's proxy score is recorded with the trial
        entry = next(e for e in log["log"] if e["trial_id"] == trial.trial_id)
        assert trial.metrics.get_last_value("proxy_score") == pytest.approx(entry["candidates"][entry["chosen"]]["score"])
    return log


def test_random_search_with_a_params_prescreen_trains_the_largest_candidates(tmp_path):
    space = SearchSpace(MICRO, open=("kernel", "expand", "se", "repeats"))
    params = lambda candidates: [cost(space.to_genotype(c), "w=0.5,d=1,r=8", 10).parameters for c in candidates]  # noqa: E731
    _search(tmp_path, "random", 1, "params:4")
    assert _check_search(tmp_path, 4, params)["prescreen"] == "params:4"
    with pytest.raises(UserError, match="prescreen differs"):
        _search(tmp_path, "random", 2, "params:5")


def test_random_search_with_a_reward_prescreen_scores_by_the_exact_cost(tmp_path):
    from effscale.search.objectives import Reward
    from effscale.search import analytic_costs

    space = SearchSpace(MICRO, open=("kernel", "expand", "se", "repeats"))
    result = _search(tmp_path, "random", 2, "reward:3", target="50k", constraint="hard")
    reward = Reward("macs", 5e4, "hard")
    factor = lambda c: reward(1.0, analytic_costs(space.to_genotype(c["values"]), 10)["macs"])  # noqa: E731
    log = json.load(open(tmp_path / "prescreen.json"))["log"]
    first, second = sorted(log, key=lambda e: int(e["trial_id"]))
    # Before any trial finished the predicted accuracy is 1: the score is the cost term alone.
    assert [c["score"] for c in first["candidates"]] == pytest.approx([factor(c) for c in first["candidates"]])
    # Then the accuracy of trial 0 (its reward over its cost term) times each candidate's cost term.
    trial0 = next(r for r in result.trials if r["trial_id"] == first["trial_id"])
    assert [c["score"] for c in second["candidates"]] == pytest.approx(
        [trial0["accuracy"] * factor(c) for c in second["candidates"]], rel=1e-6)


def test_evolution_search_with_a_grad_norm_prescreen_reloads_its_log(tmp_path):
    # One trial per search here (each training costs seconds); multi-trial prescreens, the
    # evolution's mutation phase and a resume that continues are checked above without training.
    options = {"population_size": 2, "sample_size": 1}
    _search(tmp_path, "evolution", 1, "grad_norm:3", oracle_options=options)
    log = _check_search(tmp_path, 3)
    assert all(c["score"] > 0 for e in log["log"] for c in e["candidates"])
    assert load_oracle(str(tmp_path)).prescreen_log == log["log"]
    _search(tmp_path, "evolution", 1, "grad_norm:3", oracle_options=options)  # a rerun resumes: nothing to do
    assert _check_search(tmp_path, 3) == log


def test_cli_bad_prescreen_is_one_line_and_exit_2(tmp_path, capsys):
    from effscale.cli import main

    base = ["search", "--baseline", MICRO, "--project-dir", str(tmp_path / "p")]
    for extra, message in ((["--prescreen", "synflow=20"], "expected PROXY:N"),
                           (["--prescreen", "flops:3"], "unknown proxy 'flops'"),
                           (["--oracle", "reinforce", "--prescreen", "naswot:4"], "does not prescreen")):
        assert main(base + extra) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "p").exists()
