"""`effscale proxy` end to end on digits at tiny settings: numbers, files, reload, resume after a kill."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from scipy import stats as scipy_stats

from effscale.cli import main
from effscale.common.errors import UserError
from effscale.search.fidelity import recommend, sample_architectures, setting_statistics
from effscale.search.proxy import read_proxy_file

MICRO = "stem8_head32_res16_relu-mb_r1_k3_s2_e2_c8-mb_r1_k3_s2_e2_c16"
ARGS = ["proxy", "--baseline", MICRO, "--dataset", "digits", "--architectures", "3", "--seeds", "2",
        "--full", "epochs=2,resolution=16,schedule=constant",
        "--setting", "epochs=1,resolution=8,fraction=0.5,schedule=cosine", "--batch-size", "32"]
NAMES = ["full", "e1-f0.5-r8-w1-cosine"]  # 3 architectures x 2 settings x 2 seeds: 12 short trainings


def _trainings(directory):
    found = {}
    for root, _, files in os.walk(os.path.join(directory, "trainings")):
        for name in files:
            if name.endswith(".json") and not name.startswith(".tmp"):
                path = os.path.join(root, name)
                found[path] = (os.stat(path).st_mtime_ns, open(path).read())
    return found


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("proxy") / "check")
    command = [sys.executable, "-m", "effscale.cli", *ARGS, "--project-dir", directory]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600  # a loaded machine can take minutes to import TensorFlow
    while len(_trainings(directory)) < 3 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = _trainings(directory)
    return directory, before


@pytest.mark.slow
def test_a_rerun_after_a_kill_keeps_every_finished_training(killed_and_resumed, capsys):
    directory, before = killed_and_resumed
    assert 3 <= len(before) < 12, "the kill should land mid-check"
    assert main([*ARGS, "--project-dir", directory]) == 0
    out = capsys.readouterr().out
    assert f"{len(before)} finished training(s) kept" in out
    after = _trainings(directory)
    assert len(after) == 3 * 2 * 2
    assert all(after[path] == before[path] for path in before)  # not retrained, not rewritten


@pytest.mark.slow  # reads the results of the rerun the test above makes (and shares its slow fixture)
def test_results_equal_the_trainings_and_the_files_reload(killed_and_resumed):
    directory, _ = killed_and_resumed
    with open(os.path.join(directory, "proxy_check.json")) as handle:
        summary = json.load(handle)
    assert sorted(summary["results"]) == sorted(NAMES)
    archs = summary["config"]["architectures"]
    assert len(archs) == 3 and archs[0] == MICRO
    accuracy = {}
    for name in NAMES:
        rows = []
        for a in range(3):
            records = [json.load(open(os.path.join(directory, "trainings", name, f"a{a:02d}-s{s}.json")))
                       for s in range(2)]
            assert all(r["genotype"] == archs[a] and 0 <= r["accuracy"] <= 1 and r["seconds"] > 0 for r in records)
            rows.append([r["accuracy"] for r in records])
        accuracy[name] = np.array(rows)
        assert summary["results"][name]["accuracy"] == rows
    half = json.load(open(os.path.join(directory, "trainings", NAMES[1], "a00-s0.json")))
    whole = json.load(open(os.path.join(directory, "trainings", NAMES[0], "a00-s0.json")))
    assert half["train_size"] == pytest.approx(whole["train_size"] / 2, abs=10)  # fraction=0.5 trained on half
    full_mean = accuracy["full"].mean(axis=1)
    for name in NAMES[1:]:
        r = summary["results"][name]
        expected = scipy_stats.spearmanr(accuracy[name].mean(axis=1), full_mean).statistic
        if np.isnan(expected):
            assert r["spearman_full"] is None
        else:
            assert r["spearman_full"] == pytest.approx(expected)
    for name in NAMES:
        diff = accuracy[name][:, 0] - accuracy[name][:, 1]
        assert summary["results"][name]["seed_noise"] == pytest.approx(np.sqrt(np.mean(diff ** 2) / 2))
    table = open(os.path.join(directory, "proxy_check.md")).read()
    assert all(name in table for name in NAMES[1:]) and summary["message"] in table
    assert open(os.path.join(directory, "proxy_vs_full.png"), "rb").read(4) == b"\x89PNG"
    proxy_file = os.path.join(directory, "proxy.json")
    if summary["recommended"]:
        task = read_proxy_file(proxy_file)
        setting = summary["results"][summary["recommended"]]["setting"]
        assert (task.settings.epochs, task.settings.schedule, task.resolution, task.train_fraction) == (
            setting["epochs"], setting["schedule"], setting["resolution"], setting["train_fraction"])
        assert summary["results"][summary["recommended"]]["spearman_full"] >= 0.7
    else:
        assert not os.path.exists(proxy_file) and "no proxy setting reaches" in summary["message"]


def test_recommendation_is_the_cheapest_qualifying_setting_or_says_what_to_try():
    def result(rho, seconds, seed_rho=0.9, full=False):
        return {"full": full, "spearman_full": rho, "seconds_per_trial": seconds, "seed_spearman": seed_rho}

    results = {"full": result(None, 50, seed_rho=1.0, full=True), "slow": result(0.9, 20), "cheap": result(0.75, 5),
               "cheapest": result(0.5, 1)}
    assert recommend(results, 0.7)[0] == "cheap"
    assert recommend(results, 0.8)[0] == "slow"
    name, message = recommend(results, 0.95)
    assert name is None and "best: slow at 0.90" in message and "more seeds" in message
    results["full"]["seed_spearman"] = 0.2
    assert "full training itself" in recommend(results, 0.95)[1]


def test_statistics_leave_out_unfinished_architectures_and_sampling_is_seeded():
    accuracy = np.array([[0.8, 0.82], [0.7, np.nan], [0.9, 0.88], [0.6, 0.61]])
    stats = setting_statistics(accuracy, np.array([0.81, 0.7, 0.9, 0.5]), [1.0, 3.0])
    assert stats["architectures"] == 3 and stats["seconds_per_trial"] == 2.0
    assert stats["spearman_full"] == pytest.approx(1.0) and stats["seed_spearman"] == pytest.approx(1.0)
    from effscale.search.space import SearchSpace

    space = SearchSpace("tiny")
    assert sample_architectures(space, 5, seed=3) == sample_architectures(space, 5, seed=3)
    assert sample_architectures(space, 5, seed=3) != sample_architectures(space, 5, seed=4)


def test_bad_settings_are_one_line_errors_before_anything_is_written(tmp_path, capsys):
    directory = tmp_path / "nothing"
    for extra, named in ((["--setting", "epochs=two"], "is not a number"), (["--architectures", "2"], ">= 3"),
                         (["--setting", "schedule=step"], "schedule 'step'"),
                         (["--full", "epochs=1,resolution=8,fraction=0.5"], "must differ"),
                         (["--setting", "epochs=1,augment=padded-crop"], "full setting only"),
                         (["--full", "epochs=2,augment=flip"], "augment 'flip'")):
        args = ARGS + extra
        if extra[0] == "--setting":
            args = ARGS[:ARGS.index("--setting")] + extra + ["--batch-size", "32"]
        assert main([*args, "--project-dir", str(directory)]) == 2, extra
        err = capsys.readouterr().err
        assert named in err and len(err.strip().splitlines()) == 1, err
        assert not directory.exists()
    with pytest.raises(UserError, match="not an effscale proxy file"):
        (tmp_path / "x.json").write_text("{}")
        read_proxy_file(str(tmp_path / "x.json"))


def test_an_augmented_full_setting_trains_on_augmented_images_and_keeps_its_held_out_split():
    """The full setting can be the members' final schedule with their augmentation: its training
    batches are the plain ones cropped (the same labels in the same order), validation untouched."""
    from effscale.data.pipeline import to_numpy
    from effscale.search.fidelity import ProxyTask, _Trainer, ladder, task_dict
    from effscale.search.proxy import ProxySettings

    trainer = _Trainer("digits", ProxySettings(batch_size=32))
    plain = trainer.data(ProxyTask(epochs=1, resolution=16), 0)
    cropped = trainer.data(ProxyTask(epochs=15, resolution=16, augment="padded-crop"), 0)
    (xp, yp), (xc, yc) = next(iter(plain.train)), next(iter(cropped.train))
    np.testing.assert_array_equal(yp.numpy(), yc.numpy())
    assert not np.allclose(xp.numpy(), xc.numpy())
    np.testing.assert_array_equal(to_numpy(plain.validation)[0], to_numpy(cropped.validation)[0])
    assert task_dict(ProxyTask(epochs=15, augment="padded-crop"))["augment"] == "padded-crop"
    # the ladder only takes settings at the full setting's data fraction, resolution and width
    full = {"full": True, "setting": task_dict(ProxyTask(epochs=15, resolution=16)), "spearman_full": None}
    other = {"full": False, "setting": task_dict(ProxyTask(epochs=1, resolution=8)), "spearman_full": 0.9}
    same = {"full": False, "setting": task_dict(ProxyTask(epochs=4, resolution=16)), "spearman_full": 0.4}
    assert ladder({"full": full, "a": other, "b": same}) is None
    same["spearman_full"] = 0.5
    assert ladder({"full": full, "a": other, "b": same}) == {"min_epochs": 4, "max_epochs": 15, "setting": "b",
                                                             "spearman_full": 0.5}
