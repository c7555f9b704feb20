"""benchmarks/peers.py, the harness of effscale against Keras Tuner and AutoKeras at equal CPU
budgets, in its smoke mode (digits, a 25 CPU-second budget): effscale and Keras Tuner run for
real; AutoKeras is never needed (its crash is played by a Python that exits 1)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.slow

ARGS = ["--smoke", "--tools", "effscale,keras-tuner"]
RUNS = ("effscale-b25-s0", "keras-tuner-b25-s0")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, load_benchmark):
    folder = tmp_path_factory.mktemp("peers")
    script = load_benchmark("peers.py")
    args = [*ARGS, "--out", str(folder / "out"), "--work", str(folder / "work")]
    assert script.main(args) == 0
    records = {}
    for run in RUNS:
        with open(folder / "out" / f"{run}.json") as handle:
            records[run] = json.load(handle)
    return script, folder, args, records


def test_every_run_is_one_file_with_its_cpu_seconds_and_models(smoke):
    _, _, _, records = smoke
    for run, record in records.items():
        assert record["status"] == "ok", record.get("log_tail")
        # the subprocess's own user + system time, measured by the harness, and its wall time
        assert record["cpu_seconds"] > 0 and record["wall_seconds"] > 0
        assert abs(record["cpu_user_seconds"] + record["cpu_system_seconds"] - record["cpu_seconds"]) < 0.05
        # what the worker counted for itself is inside what the harness measured of it
        assert 0 < record["worker_cpu_seconds"] <= record["cpu_seconds"] + 0.5
        models = record["models"]
        assert models and sum(m["picked"] for m in models) == 1
        for model in models:
            assert 0 <= model["test_top1"] <= 1 and model["parameters"] > 0 and model["multiply_adds"] > 0
    tuner = records["keras-tuner-b25-s0"]
    # Keras Tuner searches until the budget is spent (it has no other stop), then stops
    assert tuner["cpu_seconds"] >= 25 and tuner["trials"] >= 1
    assert tuner["hypermodel"] == "keras_tuner.applications.HyperResNet"
    assert {"version", "conv3_depth", "conv4_depth"} <= set(tuner["models"][0]["hyperparameters"])
    family = records["effscale-b25-s0"]
    assert family["trials"] == 2 and family["versions"]["effscale"]


def test_the_table_and_the_plot_list_every_run(smoke):
    _, folder, _, records = smoke
    table = (folder / "out" / "results.md").read_text()
    for record in records.values():
        assert f"| {record['tool']} | 25 | 0 | ok | {record['cpu_seconds']:.0f} |" in table
        assert f"{record['models'][0]['test_top1']:.4f}" in table
    assert "no verdict (fewer than two paired seeds)" in table  # one seed measures no noise
    assert (folder / "out" / "plot.png").stat().st_size > 1000


def test_a_rerun_skips_the_finished_runs(smoke, capsys):
    script, folder, args, records = smoke
    assert script.main(args) == 0
    printed = capsys.readouterr().out
    assert all(f"{run}: done before, skipped" in printed for run in RUNS)
    for run, record in records.items():
        with open(folder / "out" / f"{run}.json") as handle:
            assert json.load(handle) == record


def test_a_killed_harness_leaves_no_half_result_and_its_rerun_skips_what_finished(smoke, tmp_path):
    _, folder, _, records = smoke
    out = tmp_path / "out"
    out.mkdir()
    finished = out / "effscale-b25-s0.json"
    finished.write_text(json.dumps(records["effscale-b25-s0"]))
    work = tmp_path / "work"  # a fresh one (the data copied), so the log below is this run's
    work.mkdir()
    shutil.copy(folder / "work" / "data.npz", work / "data.npz")
    script = os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks", "peers.py")
    command = [sys.executable, script, *ARGS, "--out", str(out), "--work", str(work)]
    harness = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, start_new_session=True)
    log = work / "keras-tuner-b25-s0" / "log.txt"
    deadline = time.time() + 120
    while not (log.exists() and log.stat().st_size > 0) and time.time() < deadline and harness.poll() is None:
        time.sleep(0.2)
    os.killpg(harness.pid, signal.SIGKILL)  # the harness and the Keras Tuner worker it started
    printed = harness.communicate()[0]
    assert "effscale-b25-s0: done before, skipped" in printed
    assert not (out / "keras-tuner-b25-s0.json").exists()  # killed mid-run: nothing half-written
    assert json.loads(finished.read_text()) == records["effscale-b25-s0"]
    rerun = subprocess.run([*command[:2], "--smoke", "--tools", "effscale", "--out", str(out), "--work", str(work)],
                           capture_output=True, text=True)
    assert rerun.returncode == 0 and "effscale-b25-s0: done before, skipped" in rerun.stdout


def test_a_crashing_peer_is_a_failed_result_not_a_dead_harness(smoke, tmp_path, capsys):
    script, folder, _, _ = smoke
    out = tmp_path / "out"
    args = ["--smoke", "--tools", "autokeras", "--autokeras-python", "/bin/false", "--out", str(out),
            "--work", str(folder / "work")]
    assert script.main(args) == 0
    record = json.loads((out / "autokeras-b25-s0.json").read_text())
    assert record["status"] == "failed" and record["returncode"] == 1 and record["models"] == []
    assert "| autokeras | 25 | 0 | failed |" in (out / "results.md").read_text()
    capsys.readouterr()
    assert script.main(args) == 0 and "skipped" in capsys.readouterr().out  # a failure is a finished run
    assert script.main([*args, "--retry-failed"]) == 0 and "skipped" not in capsys.readouterr().out


@pytest.mark.parametrize("bad", [["--tools", "effscale,h2o"], ["--tools", "autokeras"], ["--budgets", "0"],
                                 ["--seeds", "a"], ["--shard", "2/2"], ["--dataset", "fashion_mnist"]])
def test_bad_options_exit_2_before_anything_is_written(load_benchmark, tmp_path, capsys, bad):
    script = load_benchmark("peers.py")
    assert script.main(["--smoke", *bad, "--out", str(tmp_path / "out"), "--work", str(tmp_path / "work")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert not (tmp_path / "out").exists() and not (tmp_path / "work").exists()


def test_the_budget_stop_cuts_the_running_trial_and_spares_a_training_begun_after_it(load_benchmark):
    """A search's training stops at its first batch past the budget and says so once; a training
    begun afterwards (AutoKeras' refit of the best trial) runs all its batches."""
    import keras
    import numpy as np

    script = load_benchmark("peers.py")
    spent = []
    budget = script.budget_callback(keras, 0.0, lambda: spent.append(True))  # already spent

    class Count(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.batches = 0

        def on_train_batch_end(self, batch, logs=None):
            self.batches += 1

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile("sgd", "mse")
    x, y = np.zeros((64, 4), "float32"), np.zeros((64, 2), "float32")
    trial, refit = Count(), Count()
    script.budget_callback(keras, 0.0, lambda: None)  # another search's callback: its own state
    model.fit(x, y, batch_size=8, epochs=2, callbacks=[budget, trial], verbose=0)
    assert trial.batches == 1 and spent == [True]
    model.fit(x, y, batch_size=8, epochs=2, callbacks=[budget, refit], verbose=0)
    assert refit.batches == 16 and spent == [True]
