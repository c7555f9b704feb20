"""A rejected or failed search trial is one progress line with its reason, not Keras Tuner's
full traceback (which it prints for every failed trial); the traceback stays in trial.json."""

import json
import os

from effscale import cli

MICRO = "stem8_head32_res16_relu-mb_r1_k3_s2_e2_c8-mb_r1_k3_s2_e2_c16"


def test_a_max_macs_rejection_is_one_line_per_trial(tmp_path, capsys):
    project = tmp_path / "search"
    code = cli.main(["search", "--baseline", MICRO, "--oracle", "random", "--trials", "2", "--epochs", "1",
                     "--max-macs", "1", "--seed", "1", "--project-dir", str(project)])
    captured = capsys.readouterr()
    assert code == 1 and "no trial completed" in captured.out
    assert "Traceback" not in captured.out + captured.err, captured.err[-2000:]
    rejected = [line for line in captured.out.splitlines() if "rejected before training" in line]
    assert len(rejected) == 2 and all(line.startswith("trial ") for line in rejected), captured.out
    messages = [json.load(open(os.path.join(d, "trial.json")))["message"]
                for d, _, names in os.walk(project / "tuner") if "trial.json" in names]
    assert len(messages) == 2 and all("Traceback" in m for m in messages)  # kept for whoever debugs it
