"""Noise-aware search on digits: several seeds per trial, the re-evaluation stage, proxy files."""

import csv
import json
import os

import pytest

from effscale.common.errors import UserError
from effscale.search.proxy import ProxySettings, write_proxy_file
from effscale.search import run_search

MICRO = "stem8_head32_res16_relu-mb_r1_k3_s2_e2_c8-mb_r1_k3_s2_e2_c16"
COMMON = dict(oracle="random", cost="macs", target=1e5, dataset="digits", resolution=8, verbose=0)


def _trainings(directory):
    folder = os.path.join(directory, "trainings")
    return {name: os.stat(os.path.join(folder, name)).st_mtime_ns for name in sorted(os.listdir(folder))}


@pytest.fixture(scope="module")
def two_seed_search(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("seeds") / "search")
    result = run_search(MICRO, trials=2, epochs=1, seeds=2, top_k=2, reevaluate_seeds=3, project_dir=directory,
                        **COMMON)
    return directory, result


@pytest.mark.slow
def test_two_seeds_are_recorded_and_their_mean_is_the_objective(two_seed_search):
    directory, result = two_seed_search
    rows = {r["trial_id"]: r for r in csv.DictReader(open(os.path.join(directory, "trials.csv")))}
    for trial in result.trials:
        assert trial["status"] == "COMPLETED"
        seeds = trial["accuracy_seeds"]
        assert len(seeds) == 2 and all(0 <= a <= 1 for a in seeds)
        assert trial["accuracy"] == pytest.approx(sum(seeds) / 2)
        assert trial["reward"] == pytest.approx(trial["accuracy"] * (trial["cost"] / 1e5) ** -0.07)
        row = rows[trial["trial_id"]]
        assert [float(v) for v in row["accuracy_seeds"].split(";")] == pytest.approx(seeds)
        assert float(row["accuracy_std"]) == pytest.approx(abs(seeds[0] - seeds[1]) / 2 ** 0.5)
        # The objective Keras Tuner's oracle saw is the mean's reward.
        state = json.load(open(os.path.join(directory, "tuner", f"trial_{trial['trial_id']}", "trial.json")))
        seen = state["metrics"]["metrics"]["reward"]["observations"][-1]["value"][0]
        assert seen == pytest.approx(trial["reward"])
        # Each seed's training is its own file: seed s of this genotype at 1 epoch.
        key = __import__("effscale").load_genotype(trial["genotype"]).key
        for s, accuracy in enumerate(seeds):
            stored = json.load(open(os.path.join(directory, "trainings", f"{key}-e1-s{s}.json")))
            assert stored["accuracy"] == pytest.approx(accuracy)


@pytest.mark.slow
def test_reevaluation_reuses_the_trial_seeds_picks_by_the_mean_and_resumes(two_seed_search):
    directory, result = two_seed_search
    stage = json.load(open(os.path.join(directory, "reevaluation.json")))
    assert stage["seeds"] == 3 and len(stage["candidates"]) == len({t["genotype"] for t in result.trials})
    by_genotype = {t["genotype"]: t for t in result.trials}
    for candidate in stage["candidates"]:
        trial = by_genotype[candidate["genotype"]]
        assert len(candidate["values"]) == 3
        # seeds 0 and 1 are the trial's own trainings (as rewards), seed 2 is new
        scale = trial["reward"] / trial["accuracy"]
        assert candidate["values"][:2] == pytest.approx([a * scale for a in trial["accuracy_seeds"]])
    winner = stage["winner"]
    assert result.best_genotype.encode() == winner["genotype"]
    assert json.load(open(os.path.join(directory, "best_genotype.json"))) == result.best_genotype.to_dict()
    means = {c["genotype"]: c["mean"] for c in stage["candidates"]}
    if not stage["within_noise"]:
        assert means[winner["genotype"]] == max(means.values())
    else:
        assert winner["cost"] == min(c["cost"] for c in stage["candidates"] if c["genotype"] in stage["tied"])
    before = _trainings(directory)
    assert len(before) == 2 * 2 + 2  # two trials x two seeds, then one more seed each
    again = run_search(MICRO, trials=2, epochs=1, seeds=2, top_k=2, reevaluate_seeds=3, project_dir=directory,
                       **COMMON)
    assert _trainings(directory) == before  # nothing trained again
    assert again.best_genotype == result.best_genotype and again.reevaluation["winner"] == stage["winner"]


def test_a_proxy_file_sets_the_trial_training(tmp_path):
    path = str(tmp_path / "proxy.json")
    write_proxy_file(path, ProxySettings(epochs=2, schedule="cosine", learning_rate=0.1), resolution=8,
                     width=0.5, train_fraction=0.5)
    directory = str(tmp_path / "search")
    result = run_search(MICRO, trials=1, proxy=path, project_dir=directory,
                        **{k: v for k, v in COMMON.items() if k != "resolution"})
    config = json.load(open(os.path.join(directory, "search.json")))["config"]
    assert (config["proxy"]["epochs"], config["proxy"]["schedule"], config["proxy"]["learning_rate"]) == (2, "cosine", 0.1)
    assert (config["resolution"], config["width"], config["train_fraction"]) == (8, 0.5, 0.5)
    assert result.trials[0]["epochs"] == 2
    with pytest.raises(UserError, match="not an effscale proxy file"):
        (tmp_path / "bad.json").write_text("[]")
        run_search(MICRO, trials=1, proxy=str(tmp_path / "bad.json"), project_dir=str(tmp_path / "other"), **COMMON)
    assert not (tmp_path / "other").exists()
