"""End-to-end searches on the bundled digits data: every oracle, hard limits, latency cost."""

import csv
import os

import pytest

import effscale
from effscale.data import DataSpec
from effscale.model.zoo import load_genotype
from effscale.search import ORACLES, design_variant, run_search

MICRO = "stem8_head32_res16_relu-mb_r1_k3_s2_e2_c8-mb_r1_k3_s2_e2_c16"
TRIALS = {"evolution": 1, "reinforce": 1, "random": 1, "bayesian": 2, "bayesian-sampled": 2, "predictor": 3,
          "hyperband": 3, "asha": 4}
# (3-trial evolution and REINFORCE searches on digits also run in tests/test_search_cli.py.)
# Bayesian (both): one random point, then the Gaussian process proposes. Predictor: two random
# points (its minimum), then the fitted ensemble proposes. Hyperband: max 2 epochs, factor 2
# -> two 1-epoch candidates, then the better one promoted to 2 epochs. ASHA: rungs of 1 and 2
# epochs (eta 2): two random 1-epoch candidates, the better promoted, then the predictor's pick.
OPTIONS = {"bayesian": {"num_initial_points": 1}, "bayesian-sampled": {"num_initial_points": 1},
           "predictor": {"initial_points": 2}, "hyperband": {"factor": 2}, "asha": {"initial_points": 2, "eta": 2}}


def _rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_each_oracle_runs_a_small_digits_search_and_returns_a_buildable_genotype(tmp_path):
    for oracle in [o for o in ORACLES if o != "differentiable"]:  # its own space: test_differentiable.py
        directory = tmp_path / oracle
        epochs = 2 if oracle in ("hyperband", "asha") else 1
        result = run_search(MICRO, oracle=oracle, cost="macs", target=1e5, trials=TRIALS[oracle], epochs=epochs,
                            dataset="digits", project_dir=str(directory), seed=0, verbose=0,
                            oracle_options=OPTIONS.get(oracle))
        assert len(result.trials) == TRIALS[oracle], oracle
        assert all(t["status"] == "COMPLETED" for t in result.trials), result.trials
        for trial in result.trials:
            assert 0.0 <= trial["accuracy"] <= 1.0 and trial["cost"] > 0
            assert trial["reward"] == pytest.approx(trial["accuracy"] * (trial["cost"] / 1e5) ** -0.07)
        best = result.best_genotype
        assert best == load_genotype(str(directory / "best_genotype.json"))
        assert best.encode() == max(result.trials, key=lambda t: t["reward"])["genotype"]
        model = effscale.build(best, design_variant(best), classes=10)
        assert model.output_shape == (None, 10)
        rows = _rows(directory / "trials.csv")
        assert [r["trial_id"] for r in rows] == [t["trial_id"] for t in result.trials]
        pareto = _rows(directory / "pareto.csv")
        assert pareto and {r["trial_id"] for r in pareto} <= {r["trial_id"] for r in rows}
        if oracle in ("hyperband", "asha"):
            assert [t["epochs"] for t in result.trials] == ([1, 1, 2] if oracle == "hyperband" else [1, 1, 2, 1])
            first_two = result.trials[:2]
            promoted = max(first_two, key=lambda t: t["reward"])
            assert result.trials[2]["genotype"] == promoted["genotype"]
        if oracle == "asha":  # the predictor's new candidate is none of the ones trained before
            assert result.trials[3]["genotype"] not in {t["genotype"] for t in result.trials[:3]}


@pytest.mark.slow
def test_hard_limits_fail_candidates_before_training_and_the_search_goes_on(tmp_path):
    # The reference has 2,505 parameters; wider, deeper or more expanded candidates go over the limit.
    limit = 8000
    result = run_search(MICRO, oracle="random", cost="latency", target=0.001, constraint="hard", trials=4,
                        epochs=1, project_dir=str(tmp_path), seed=0, max_params=limit, verbose=0)
    statuses = [t["status"] for t in result.trials]
    assert "FAILED" in statuses and "COMPLETED" in statuses, result.trials
    for trial in result.trials:
        params = effscale.model.cost.cost(trial["genotype"], design_variant(load_genotype(trial["genotype"])), 10).parameters
        if trial["status"] == "FAILED":
            assert params > limit and "rejected before training" in trial["reason"]
            assert trial["accuracy"] is None  # never trained
        else:
            assert params <= limit and 0 < trial["latency"] < 1
            assert trial["cost"] == trial["latency"]
            expected = trial["accuracy"] * (1.0 if trial["cost"] <= 0.001 else 0.001 / trial["cost"])
            assert trial["reward"] == pytest.approx(expected)
    assert os.path.isfile(tmp_path / "latency" / "latency.json")  # measured latencies are cached


def test_nan_loss_fails_the_trial_with_its_reason(tmp_path):
    import numpy as np
    import tensorflow as tf

    from effscale.data.pipeline import DataSplits
    from effscale.search.objectives import Limits, Reward
    from effscale.search.proxy import ProxySettings
    from effscale.search import TrialRunner, make_oracle
    from effscale.search.tuner import make_tuner_class
    from effscale.search.space import SearchSpace

    images = np.full((64, 16, 16, 3), np.nan, "float32")  # corrupt pixels: the loss goes NaN
    labels = np.arange(64, dtype="int32") % 10
    batches = tf.data.Dataset.from_tensor_slices((images, labels)).batch(32)
    space = SearchSpace(MICRO, open=("kernel",))
    runner = TrialRunner(space, Reward("macs", 1e5), Limits(), ProxySettings(epochs=1),
                         DataSpec("digits", resolution=16), 1.0, 1.0)
    runner.latency_dir, runner.heartbeat_s = str(tmp_path / "latency"), 1.0
    runner._data = DataSplits(batches, batches, 10, 64, 64)
    oracle = make_oracle("random", 1, space.hyperparameters(), seed=0)
    oracle.verbose = 0
    tuner = make_tuner_class()(oracle, runner, directory=str(tmp_path), project_name="tuner")
    tuner.search()
    trials = list(oracle.trials.values())
    assert len(trials) == 1
    assert all(t.status == "FAILED" and "NaN loss" in t.message for t in trials)


def test_a_search_config_and_the_keyword_form_are_the_same_search(tmp_path):
    """``run_search(SearchConfig(...), DIR)`` and the older ``run_search(BASELINE, **options,
    project_dir=DIR)`` build one config: the second call resumes the first's project (a different
    search would be refused), and keywords beside a SearchConfig replace its fields."""
    import io
    import json

    from effscale.search import SearchConfig

    directory = str(tmp_path / "p")
    config = SearchConfig(MICRO, oracle="random", trials=1, epochs=1, resolution=8, width=0.5, max_params=1e6,
                          open_choices=["kernel"], stages=[2], seed=3)
    first = run_search(config, directory, verbose=0)
    assert [t["status"] for t in first.trials] == ["COMPLETED"]
    out = io.StringIO()
    again = run_search(MICRO, oracle="random", trials=2, epochs=1, resolution=8, width=0.5, max_params=1e6,
                       open_choices=("kernel",), stages=(2,), seed=3, project_dir=directory, stream=out)
    assert "resuming" in out.getvalue() and "1 finished trial(s) kept" in out.getvalue()
    assert len(again.trials) == 2 and again.trials[0] == first.trials[0]
    with open(os.path.join(directory, "search.json")) as handle:
        saved = json.load(handle)["config"]
    assert (saved["limits"]["max_params"], saved["space"]["open"], saved["space"]["stages"], saved["seed"]) == (
        1e6, ["kernel"], [2], 3)
    with pytest.raises(effscale.UserError, match="holds a different search"):
        run_search(config, directory, seed=4, verbose=0)  # a keyword beside the config replaces its field
