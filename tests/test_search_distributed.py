"""Keras Tuner's chief / worker mode with the evolution oracle, on localhost."""

import csv
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from effscale.common.errors import UserError
from effscale.common.io import read_json
from effscale.search.distributed import role

MICRO = "stem8_head32_res16_relu-mb_r1_k3_s2_e2_c8-mb_r1_k3_s2_e2_c16"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_role_comes_from_the_environment_and_the_default_address_is_loopback(monkeypatch):
    for name in ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"):
        monkeypatch.setenv(name, "x")  # so that monkeypatch restores the variable's absence afterwards
        monkeypatch.delenv(name)
    assert role() is None  # not asked for: nothing listens
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", "8000")
    with pytest.raises(UserError, match="KERASTUNER_TUNER_ID"):
        role()
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "chief")
    assert role() == "chief" and os.environ["KERASTUNER_ORACLE_IP"] == "127.0.0.1"
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "tuner1")
    assert role() == "worker"


@pytest.mark.slow
def test_chief_and_two_workers_finish_a_search_and_a_killed_worker_does_not_stop_the_chief(tmp_path):
    port = _free_port()
    directory = tmp_path / "project"
    command = [sys.executable, "-m", "effscale.cli", "search", "--baseline", MICRO, "--oracle", "evolution",
               "--cost", "macs", "--target", "100k", "--trials", "3", "--epochs", "1", "--project-dir", str(directory),
               "--seed", "0", "--population", "2", "--tournament", "1", "--worker-timeout", "8"]
    base_env = dict(os.environ, KERASTUNER_ORACLE_PORT=str(port), TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)
    base_env.pop("KERASTUNER_ORACLE_IP", None)  # the default: loopback
    procs, logs = {}, {}
    for tuner_id in ("chief", "tuner1", "tuner2"):
        logs[tuner_id] = tmp_path / f"{tuner_id}.log"
        procs[tuner_id] = subprocess.Popen(command, env=dict(base_env, KERASTUNER_TUNER_ID=tuner_id), cwd=ROOT,
                                           stdout=open(logs[tuner_id], "w"), stderr=subprocess.STDOUT)
    try:
        # Kill worker tuner1 in the middle of a trial it is training.
        oracle_file = directory / "tuner" / "oracle.json"
        seen = None
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            assert procs["chief"].poll() is None, logs["chief"].read_text()[-2000:]
            ongoing = read_json(oracle_file).get("ongoing_trials", {}) if oracle_file.exists() else {}
            if "tuner1" in ongoing and seen is None:
                seen = time.monotonic()
            if seen is not None and time.monotonic() - seen > 1.0:
                break
            time.sleep(0.1)
        assert seen is not None, "worker tuner1 never started a trial"
        killed_trial = read_json(oracle_file)["ongoing_trials"].get("tuner1")
        procs["tuner1"].send_signal(signal.SIGKILL)
        procs["tuner1"].wait()
        assert procs["chief"].wait(timeout=300) == 0, logs["chief"].read_text()[-3000:]
        assert procs["tuner2"].wait(timeout=60) == 0, logs["tuner2"].read_text()[-3000:]
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
    chief_log = logs["chief"].read_text()
    assert f"on 127.0.0.1:{port}" in chief_log
    with open(directory / "trials.csv", newline="") as handle:
        rows = {r["trial_id"]: r for r in csv.DictReader(handle)}
    assert len(rows) == 3
    statuses = sorted(r["status"] for r in rows.values())
    if killed_trial is not None and rows[killed_trial]["status"] == "FAILED":
        assert "tuner1 stopped responding" in rows[killed_trial]["reason"]
    assert statuses.count("COMPLETED") >= 2 and set(statuses) <= {"COMPLETED", "FAILED"}
    assert "stopped responding" in chief_log
    assert (directory / "best_genotype.json").exists()
    worker_lines = [line for line in logs["tuner2"].read_text().splitlines() if line.startswith("trial ")]
    assert worker_lines  # the surviving worker trained and reported trials
