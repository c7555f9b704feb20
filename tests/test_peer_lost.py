"""A multi-worker peer killed mid-run: the survivor ends with one line naming the worker and
how to resume (exit 1, no traceback), and rerunning both workers resumes from the checkpoint.
Real processes, real MultiWorkerMirroredStrategy over localhost, no mocks."""

import json
import signal
import time

import pytest

from effscale.common.io import read_json
from tests.test_train import EPOCHS, _start_workers


@pytest.mark.slow
def test_killed_worker_is_named_in_one_line_and_the_rerun_resumes(tmp_path):
    shared = tmp_path / "shared"
    first = _start_workers([shared, shared])
    state_path = shared / "checkpoint" / "state.json"
    deadline = time.time() + 400
    while time.time() < deadline and all(p.poll() is None for p in first):
        if state_path.exists() and read_json(state_path)["epoch"] >= 1:
            break
        time.sleep(0.02)
    first[1].send_signal(signal.SIGKILL)
    try:
        _, stderr = first[0].communicate(timeout=300)
    finally:
        first[0].kill()
        first[1].communicate()
    assert first[0].returncode == 1, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if line.startswith("effscale: error:")]
    assert len(lines) == 1, stderr[-3000:]
    assert "worker 1" in lines[0] and "localhost:" in lines[0] and "resume" in lines[0]
    killed_at = read_json(state_path)["epoch"]
    assert 1 <= killed_at < EPOCHS
    second = _start_workers([shared, shared])
    try:
        results = [p.communicate(timeout=540) for p in second]
    finally:
        for p in second:
            p.kill()
    for process, (stdout, stderr) in zip(second, results):
        assert process.returncode == 0, stderr[-3000:]
        record = json.loads(stdout[stdout.index("{"):])
        assert record["resumed_from_epochs"] == [killed_at] and record["epochs_done"] == EPOCHS
