"""Two runs on one folder: the second `search` (or `family`) refuses with one line naming the
holder's process, before it trains or writes a result; a killed holder leaves nothing stuck."""

import os
import signal
import subprocess
import sys

import pytest

from effscale import cli
from effscale.common.lock import LOCK_NAME, folder_lock

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MICRO = "stem8_head32_res16_relu-mb_r1_k3_s2_e2_c8-mb_r1_k3_s2_e2_c16"
HOLD = "import sys, time\nfrom effscale.common.lock import folder_lock\nwith folder_lock(sys.argv[1], sys.argv[2]):\n" \
       "    print('held', flush=True)\n    time.sleep(600)\n"


@pytest.fixture
def holder():
    """A process that holds the lock of a folder until it is killed."""
    started = []

    def hold(folder, what):
        process = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), what], stdout=subprocess.PIPE, text=True,
                                   env=dict(os.environ, PYTHONPATH=ROOT))
        assert process.stdout.readline().strip() == "held"
        started.append(process)
        return process

    yield hold
    for process in started:
        process.kill()
        process.wait()


@pytest.mark.parametrize("argv", [
    ["search", "--baseline", MICRO, "--oracle", "random", "--trials", "1", "--epochs", "1", "--project-dir", "DIR"],
    ["family", "--dataset", "digits", "--baseline", MICRO, "--no-search", "--family", "phi=0", "--train-epochs", "1",
     "--out", "DIR"],
])
def test_a_second_run_on_a_held_folder_refuses_and_a_killed_holder_frees_it(tmp_path, capsys, holder, argv):
    folder = tmp_path / "run"
    folder.mkdir()
    process = holder(folder, argv[0])
    code = cli.main([str(folder) if a == "DIR" else a for a in argv])
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2 and len(lines) == 1, captured.err[-2000:]
    assert f"is in use by another effscale {argv[0]} (process {process.pid})" in lines[0]
    assert sorted(os.listdir(folder)) == [LOCK_NAME]  # refused before it wrote anything
    process.send_signal(signal.SIGKILL)
    process.wait()
    with folder_lock(str(folder), argv[0]):  # the kernel released it with the process
        pass
