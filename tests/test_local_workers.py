"""``effscale search --workers N``: this process serves the oracle, N worker processes it starts
train the trials at the same time; a killed chief takes its workers with it, a rerun resumes; a
search whose workers all died stops with one line instead of waiting."""

import csv
import os
import signal
import subprocess
import sys
import time

import pytest

from effscale.common.io import read_json

MICRO = "stem8_head32_res16_relu-mb_r1_k3_s2_e2_c8-mb_r1_k3_s2_e2_c16"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _command(directory, trials, workers):
    return [sys.executable, "-m", "effscale.cli", "search", "--baseline", MICRO, "--oracle", "random",
            "--cost", "macs", "--target", "100k", "--trials", str(trials), "--epochs", "1",
            "--project-dir", str(directory), "--seed", "0", "--workers", str(workers)]


def _env(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT, TMPDIR=str(tmp_path))
    for name in ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"):
        env.pop(name, None)
    return env


def _children(pid):
    with open(f"/proc/{pid}/task/{pid}/children") as handle:
        return [int(p) for p in handle.read().split()]


def _running(pid):
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _wait_for(predicate, process, log, seconds=240):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-2000:]
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out; chief said: {log.read_text()[-2000:]}")


def _ongoing(directory):
    oracle_file = directory / "tuner" / "oracle.json"
    try:
        return set(read_json(oracle_file).get("ongoing_trials", {})) if oracle_file.exists() else set()
    except ValueError:  # caught between the write and the rename of another process
        return set()


@pytest.mark.slow
def test_two_workers_train_at_once_a_killed_chief_takes_them_along_and_a_rerun_finishes(tmp_path):
    directory, log = tmp_path / "project", tmp_path / "chief.log"
    env = _env(tmp_path)
    chief = subprocess.Popen(_command(directory, 6, 2), env=env, cwd=ROOT, stdout=open(log, "w"),
                             stderr=subprocess.STDOUT)
    try:
        # Both workers hold a trial at the same moment: the trials run in parallel.
        _wait_for(lambda: _ongoing(directory) == {"worker0", "worker1"}, chief, log)
        workers = _children(chief.pid)
        assert len(workers) == 2
        _wait_for(lambda: any(r.startswith("trial ") for r in log.read_text().splitlines()), chief, log)
        chief.send_signal(signal.SIGKILL)
        chief.wait()
        deadline = time.monotonic() + 30
        while any(_running(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_running(pid) for pid in workers), "a worker outlived its killed chief"
    finally:
        if chief.poll() is None:
            chief.kill()
    finished = [line for line in log.read_text().splitlines() if line.startswith("trial ")]
    rerun = subprocess.run(_command(directory, 6, 2), env=env, cwd=ROOT, capture_output=True, text=True,
                           timeout=400)
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]
    assert "2 worker process(es), 1 TensorFlow thread(s) each" in rerun.stdout or os.cpu_count() != 2
    kept = [line for line in rerun.stdout.splitlines() if line.startswith("resuming ")]
    assert kept and int(kept[0].split(": ")[1].split()[0]) >= len(finished) >= 1
    with open(directory / "trials.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6 and sum(r["status"] == "COMPLETED" for r in rows) >= 5
    assert "mbconv" not in rerun.stdout  # Keras Tuner's stray debug print of conditional values is off
    assert not [name for name in os.listdir(tmp_path) if name.startswith("effscale-workers-")]


@pytest.mark.slow
def test_a_search_whose_workers_all_died_stops_with_one_line(tmp_path):
    directory, log = tmp_path / "project", tmp_path / "chief.log"
    chief = subprocess.Popen(_command(directory, 4, 1), env=_env(tmp_path), cwd=ROOT, stdout=open(log, "w"),
                             stderr=subprocess.STDOUT)
    try:
        _wait_for(lambda: _ongoing(directory) == {"worker0"}, chief, log)
        for pid in _children(chief.pid):
            os.kill(pid, signal.SIGKILL)
        assert chief.wait(timeout=60) == 2
    finally:
        if chief.poll() is None:
            chief.kill()
    errors = [line for line in log.read_text().splitlines() if line.startswith("effscale: error:")]
    assert len(errors) == 1 and "every worker process ended before the search did" in errors[0]
    assert "rerun the same command to resume" in errors[0] and "Traceback" not in log.read_text()


def test_bad_worker_counts_and_a_clash_with_a_chief_environment_are_one_line_and_write_nothing(tmp_path):
    env = _env(tmp_path)
    for bad in ("x", "65", "-1"):
        done = subprocess.run(_command(tmp_path / "p", 2, 2)[:-1] + [bad], env=env, cwd=ROOT,
                              capture_output=True, text=True)
        assert done.returncode == 2 and "--workers" in done.stderr and "Traceback" not in done.stderr
    done = subprocess.run(_command(tmp_path / "p", 2, 2), env=dict(env, KERASTUNER_TUNER_ID="chief"), cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "KERASTUNER_TUNER_ID" in done.stderr
    assert not (tmp_path / "p").exists()


def test_workers_share_the_cores():
    from effscale.search.local_workers import check_workers, worker_threads

    assert [worker_threads(n, cores=4) for n in (1, 2, 3, 4, 8)] == [4, 2, 1, 1, 1]
    for bad in (True, 1.5, "2", 65):
        with pytest.raises(ValueError):
            check_workers(bad)
