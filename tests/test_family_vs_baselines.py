"""The headline benchmark's smoke mode (digits, tiny sizes, 1 epoch): the family run, the
multiply-adds matching of the hand-designed families, the keras.applications baseline, the
verdicts, the written files and the resume."""

import dataclasses
import json

import pytest


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, load_benchmark):
    folder = tmp_path_factory.mktemp("fvb")
    script = load_benchmark("family_vs_baselines.py")
    args = ["--smoke", "--work", str(folder / "work"), "--out", str(folder / "out")]
    assert script.main(args) == 0
    with open(folder / "out" / "results.json") as handle:
        first = json.load(handle)
    return script, folder, args, first


@pytest.mark.slow
def test_every_family_is_trained_at_each_searched_members_multiply_adds(smoke):
    from effscale.model.cost import multiply_adds
    from effscale.model.genotype import Genotype
    from effscale.model.scaling import Variant
    from effscale.model.zoo import get_genotype

    _, folder, _, results = smoke
    families = results["families"]
    assert set(families) == {"searched", "reference", "efficientnet-b0", "mobilenet-v2"}
    searched = families["searched"][0]
    for name in ("efficientnet-b0", "mobilenet-v2"):
        row = families[name][0]
        # matched within 10% (the bisection's promise), recounted here from the published genotype
        macs = multiply_adds(get_genotype(name), Variant.from_dict(row["variant"]), 10)
        assert macs == row["macs"] and abs(macs / searched["macs"] - 1) <= 0.1
        assert row["variant"]["resolution"] == searched["variant"]["resolution"]
    # the searched member's seed-0 number is the family run's own training of it
    with open(folder / "work" / "family" / "results.json") as handle:
        family = json.load(handle)
    assert searched["test_top1_seeds"][0] == family["variants"][0]["test_top1"]
    assert Genotype.parse(results["searched_genotype"]).key  # a real genotype string
    for rows in families.values():
        for row in rows:
            assert len(row["test_top1_seeds"]) == 1 and 0 <= row["test_top1"] <= 1 and row["wall_seconds"] > 0


@pytest.mark.slow
def test_the_keras_applications_baseline_and_the_written_files(smoke):
    import keras

    _, folder, _, results = smoke
    app = results["applications"]["MobileNetV2"]
    expected = keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), classes=10, alpha=0.35)
    assert app["params"] == expected.count_params() and app["macs"] > 0
    verdict = results["verdicts"][0]
    assert verdict["verdict"] == "one seed: no verdict" and verdict["best_baseline"] in (
        "reference", "efficientnet-b0", "mobilenet-v2")
    markdown = (folder / "out" / "results.md").read_text()
    assert "| searched | phi0 |" in markdown and "keras.applications" in markdown
    assert (folder / "out" / "plot.png").stat().st_size > 1000
    keras.backend.clear_session()


@pytest.mark.slow
def test_a_rerun_trains_nothing_and_reports_the_same_numbers(smoke):
    script, folder, args, first = smoke
    assert script.main(args) == 0
    with open(folder / "out" / "results.json") as handle:
        second = json.load(handle)
    assert second["families"] == first["families"] and second["applications"] == first["applications"]


def test_verdict_is_a_tie_inside_seed_noise_and_a_win_outside(load_benchmark):
    script = load_benchmark("family_vs_baselines.py")
    # paired differences 0.01, -0.01, 0.00: the 95% interval holds 0
    assert script.verdict([0.81, 0.80, 0.82], [0.80, 0.81, 0.82]) == "tie"
    assert script.verdict([0.90, 0.91, 0.92], [0.80, 0.82, 0.81]) == "above"
    assert script.verdict([0.70, 0.71, 0.72], [0.80, 0.82, 0.81]) == "below"
    assert script.verdict([0.90], [0.80]) == "one seed: no verdict"  # one seed measures no noise


@pytest.mark.slow
def test_longer_training_adds_the_member_and_its_best_baseline_and_resumes(smoke, capsys):
    """``--longer MEMBER:EPOCHS`` reads the finished comparison (no search again), trains the
    searched member and the verdict's best baseline at the member's variants, and keeps the
    rest of the results; a rerun trains nothing; bad input is refused before anything is written."""
    script, folder, args, first = smoke
    out = folder / "out" / "results.json"
    assert script.main([*args, "--longer", "phi0:2"]) == 0
    results = json.loads(out.read_text())
    (longer,) = results["longer"]
    best = first["verdicts"][0]["best_baseline"]
    assert (longer["member"], longer["epochs"], longer["seeds"]) == ("phi0", 2, [0])
    assert set(longer["rows"]) == {"searched", best} and longer["verdict"] == "one seed: no verdict"
    for family, row in longer["rows"].items():
        record = json.loads((folder / "work" / "longer" / f"{family}-phi0-e2" / "seed0" / "results.json").read_text())
        assert record["epochs_done"] == 2 and row["test_top1_seeds"] == [record["test_top1"]]
        assert row["params"] == next(r for r in first["families"][family] if r["member"] == "phi0")["params"]
    assert results["families"] == first["families"] and "Longer training: phi0 for 2 epochs" in (
        folder / "out" / "results.md").read_text()
    assert script.main([*args, "--longer", "phi0:2"]) == 0
    assert json.loads(out.read_text())["longer"] == results["longer"]

    before = out.read_text()
    for bad, message in ((["--longer", "phi9:2"], "no member 'phi9'"), (["--longer", "phi0"], "MEMBER:EPOCHS"),
                         (["--longer", "phi0:1", "--out", str(folder / "none")], "needs a finished comparison")):
        argv = [*args, *bad]
        with pytest.raises(SystemExit) as stopped:
            script.main(argv)
        assert stopped.value.code == 2 and message in capsys.readouterr().err
    assert out.read_text() == before and not (folder / "none").exists()
    assert not (folder / "work" / "longer" / "searched-phi9-e2").exists()


@pytest.mark.slow
def test_the_final_setting_runs_in_shards_keeps_every_training_and_a_lost_work_folder_loses_none(
        tmp_path, load_benchmark):
    """``--setting smoke-final`` (the final rerun's code path on digits): asha over the wide space
    with its top rung on padded-crop images, two shards and then the results; every training's
    record is in the tracked store, so the results come back after the work folder's trainings
    are deleted, with nothing trained again."""
    import os
    import shutil

    script = load_benchmark("family_vs_baselines.py")
    work, out = tmp_path / "work", tmp_path / "out"
    common = ["--setting", "smoke-final", "--work", str(work), "--out", str(out)]
    assert script.main([*common, "--shard", "0/2"]) == 0
    assert not (out / "results.json").exists()  # a shard writes trainings, not results
    assert script.main([*common, "--shard", "1/2"]) == 0
    stored = sorted(os.listdir(out / "trainings"))
    assert stored == sorted(f"{family}-phi0-s{seed}.json" for family in
                            ("searched", "reference", "efficientnet-b0", "mobilenet-v2") for seed in (0,))
    trainings = os.listdir(work / "family" / "search" / "trainings")
    top = [name for name in trainings if "-e2-" in name]
    assert top and all(name.endswith("-e2-padded-crop-s0.json") for name in top)
    assert all("crop" not in name for name in trainings if "-e1-" in name)
    shutil.rmtree(work / "train")
    assert script.main(common) == 0
    assert not (work / "train").exists()  # nothing was trained again
    with open(out / "results.json") as handle:
        results = json.load(handle)
    for family, rows in results["families"].items():
        seeds = [json.loads((out / "trainings" / f"{family}-phi0-s{s}.json").read_text())["record"]["test_top1"]
                 for s in (0,)]
        assert rows[0]["test_top1_seeds"] == seeds
    assert results["settings"]["augment"] == "padded-crop" and results["settings"]["search_oracle"] == "asha"


def test_shard_and_setting_arguments_are_checked(load_benchmark):
    script = load_benchmark("family_vs_baselines.py")
    assert script.parse_shard("1/2") == (1, 2)
    for bad in ("2/2", "1", "a/b", "\u0661/2", "-1/2"):
        with pytest.raises(ValueError):
            script.parse_shard(bad)
    with pytest.raises(SystemExit) as exit_:
        script.main(["--shard", "3/2"])
    assert exit_.value.code == 2
    from effscale.family.config import FamilyConfig

    final = FamilyConfig.from_dict(script.family_config(script.SETTINGS["final"]))
    search = final.search.search_config()
    assert search.oracle == "asha" and search.oracle_options["max_epochs"] == final.training.epochs == 15
    assert search.top_rung_augment == final.training.augment == "padded-crop" and "activation" in search.open_choices
    hard = FamilyConfig.from_dict(script.family_config(script.SETTINGS["final-hard"]))
    assert search.constraint == "soft" and hard.search.search_config().constraint == "hard"
    assert dataclasses.replace(hard.search.search_config(), constraint="soft") == search
