"""Project folders written before effscale.search became a package still resume.

tests/fixtures/before_package/ was written by the code at commit 4088564 (effscale/search.py,
effscale/cli.py as single modules), with the bundled digits data:

* ``search/``: ``effscale search --baseline MICRO --oracle evolution --cost macs --target 100k
  --trials 2 --epochs 1 --dataset digits --seed 5 --population 3 --tournament 2 --project-dir search``
* ``family_run/``: ``effscale family --config family.json --out family_run --quiet``, SIGKILLed as
  soon as ``state.json`` recorded the search stage done (the first variant had just started
  training and written its ``run.json``, no weights; its TensorBoard event file is left out).
"""

import csv
import json
import os
import shutil

from effscale import cli
from effscale.family.pipeline import run_family

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "before_package")
MICRO = "stem8_head32_res16_relu-mb_r1_k3_s2_e2_c8-mb_r1_k3_s2_e2_c16"


def _rows(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_an_old_search_project_resumes_to_a_larger_budget(tmp_path, capsys):
    project = tmp_path / "search"
    shutil.copytree(os.path.join(FIXTURES, "search"), project)
    old_rows = _rows(project / "trials.csv")
    code = cli.main(["search", "--baseline", MICRO, "--oracle", "evolution", "--cost", "macs", "--target", "100k",
                     "--trials", "3", "--epochs", "1", "--dataset", "digits", "--project-dir", str(project),
                     "--seed", "5", "--population", "3", "--tournament", "2"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "2 finished trial(s) kept" in out
    rows = _rows(project / "trials.csv")
    assert len(rows) == 3 and all(r["status"] == "COMPLETED" for r in rows)
    assert rows[:2] == old_rows  # the finished trials are kept as they were, not rerun
    assert "trial 3/3 COMPLETED" in out


def test_an_old_family_run_killed_after_its_search_resumes_without_searching_again(tmp_path):
    run_dir = tmp_path / "family_run"
    shutil.copytree(os.path.join(FIXTURES, "family_run"), run_dir)
    with open(run_dir / "state.json") as handle:
        killed = json.load(handle)
    assert killed["stages"]["train:phi0"]["status"] == "running"
    trial_files = sorted(p.name for p in (run_dir / "search" / "tuner").iterdir())

    run_family(os.path.join(FIXTURES, "family.json"), str(run_dir), verbose=0)

    with open(run_dir / "state.json") as handle:
        final = json.load(handle)
    stages = final["stages"]
    assert stages["search"] == killed["stages"]["search"]  # not searched again
    assert stages["train:phi0"]["status"] == "done" and stages["train:phi0"]["attempts"] == 2
    assert all(stage["status"] == "done" for stage in stages.values())
    assert sorted(p.name for p in (run_dir / "search" / "tuner").iterdir()) == trial_files
    assert (run_dir / "variants" / "phi0" / "model.keras").is_file()
