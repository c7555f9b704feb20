"""Progressive learning (EfficientNetV2): stages of growing image size and regularization.

Tiny variant on digits, one or two epochs per stage: the records of the trained run must say
which image size and dropout each stage really trained with (read from the stage's data and
its built model, not from the schedule), and a run killed in the middle of a stage resumes in
that stage with that stage's settings.
"""

import os
import signal
import subprocess
import sys
import time

import keras
import pytest

from effscale.common.errors import UserError
from effscale.common.io import read_json
from effscale.training.progressive import Progressive
from effscale.training.recipe import Recipe

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VARIANT = "w=0.25,d=0.25,r=16"
SPEC = "stages=2,resolution=8-16,dropout=0.1-0.3"


def _env():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))


def _command(out, epochs, spec=SPEC):
    return [sys.executable, "-m", "effscale.cli", "train", "tiny", "--variant", VARIANT, "--dataset", "digits",
            "--epochs", str(epochs), "--batch-size", "64", "--latency-runs", "0", "--verbose", "2",
            "--progressive", spec, "--out", str(out)]


@pytest.mark.slow
def test_records_hold_the_image_size_and_dropout_each_stage_trained_with(tmp_path):
    from effscale.training.train import train_variant

    recipe = Recipe(epochs=3, batch_size=64, batch_scope="global",
                    progressive={"stages": 3, "resolution": [8, 16], "dropout": [0.0, 0.4], "mixup": [0.0, 0.2]})
    record = train_variant("tiny", VARIANT, data="digits", recipe=recipe, strategy="default", out_dir=str(tmp_path),
                           verbose=0, latency_runs=0)
    # 8 -> 16 px and dropout 0 -> 0.4 in three stages: 8, 12, 16 px and 0, 0.2, 0.4.
    stages = read_json(tmp_path / "results.json")["progressive"]
    assert [(s["stage"], s["epochs"], s["resolution"], s["dropout"]) for s in stages] == [
        (1, 1, 8, 0.0), (2, 1, 12, 0.2), (3, 1, 16, 0.4)]
    assert [s["mixup"] for s in stages] == [0.0, 0.1, 0.2]
    assert [(h["resolution"], h["dropout"]) for h in record["history"]] == [(8, 0.0), (12, 0.2), (16, 0.4)]
    # One optimizer all along: its step count went on across the stages.
    assert read_json(tmp_path / "checkpoint" / "state.json")["optimizer_iterations"] == 3 * record["steps_per_epoch"]
    model = keras.saving.load_model(tmp_path / "model.keras")
    assert model.input_shape == (None, 16, 16, 3) and model.get_layer("top_dropout").rate == 0.4


@pytest.mark.slow
def test_killed_in_the_middle_of_a_stage_resumes_there(tmp_path):
    epochs = 5  # stage 1: epochs 1-2 at 8 px, stage 2: epochs 3-5 at 16 px
    out = tmp_path / "run"
    log = open(tmp_path / "first.log", "w")
    process = subprocess.Popen(_command(out, epochs), cwd=ROOT, env=_env(), stdout=log, stderr=subprocess.STDOUT)
    state_path = out / "checkpoint" / "state.json"
    deadline = time.time() + 400
    while time.time() < deadline and process.poll() is None:
        if state_path.exists() and read_json(state_path)["epoch"] >= 3:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    assert process.wait(timeout=60) == -signal.SIGKILL, open(tmp_path / "first.log").read()[-3000:]
    killed = read_json(state_path)
    killed_at = killed["epoch"]
    assert 3 <= killed_at < epochs  # inside stage 2, which covers epochs 3..5
    assert [h["resolution"] for h in killed["history"]] == [8, 8] + [16] * (killed_at - 2)

    rerun = subprocess.run(_command(out, epochs), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=400)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"resuming {out} at epoch {killed_at + 1}/{epochs}" in rerun.stdout
    assert "stage 2/2: resolution 16, dropout 0.3" in rerun.stdout and "stage 1/2" not in rerun.stdout
    record = read_json(out / "results.json")
    assert record["resumed_from_epochs"] == [killed_at]
    assert record["history"][:killed_at] == killed["history"]  # nothing redone
    assert [(h["resolution"], h["dropout"]) for h in record["history"]] == [(8, 0.1)] * 2 + [(16, 0.3)] * 3
    assert [(s["first_epoch"], s["epochs"], s["resolution"], s["dropout"]) for s in record["progressive"]] == [
        (1, 2, 8, 0.1), (3, 3, 16, 0.3)]
    assert read_json(state_path)["optimizer_iterations"] == epochs * record["steps_per_epoch"]


def test_spec_errors_are_one_line_and_nothing_is_written(tmp_path):
    with pytest.raises(UserError, match="needs at least as many epochs"):
        Recipe(epochs=2, progressive={"stages": 3, "resolution": [8, 16]})
    with pytest.raises(UserError, match="dropout values must be in"):
        Progressive(dropout=(0.1, 1.5))
    out = tmp_path / "bad"
    done = subprocess.run(_command(out, 2, "stages=2,resolution=8-16,dropout=0.1"), cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0 and "START-END" in done.stderr
    assert not out.exists()
