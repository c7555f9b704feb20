"""A full (or unwritable) disk while train, search and family write their state and results:
one line naming the file, exit 1, no temporary file left, never a success message; the same
command rerun once space is freed resumes from the last complete state.

The fault is injected where every effscale write ends (``os.replace`` of the atomic write, the
moment a full disk is found for a file that is being replaced) for one file name, and, where
this machine lets the test mount one, on a real 120 KiB tmpfs that fills under HDF5 (which
crashed the process with a segmentation fault before the space was checked first).
"""

import errno
import json
import os
import subprocess
import tempfile

import pytest
import yaml

from effscale import cli
from effscale.common.errors import OutputError
from effscale.common.io import atomic_path, write_json

MICRO = "stem8_head32_res16_relu-mb_r1_k3_s2_e2_c8-mb_r1_k3_s2_e2_c16"
TRAIN = ["train", MICRO, "--variant", "w=1,d=1,r=16", "--train-fraction", "0.2", "--latency-runs", "0",
         "--verbose", "0"]
SEARCH = ["search", "--baseline", MICRO, "--oracle", "random", "--cost", "macs", "--target", "100k", "--trials", "2",
          "--epochs", "1", "--seed", "3", "--quiet"]


def fail_writes_of(monkeypatch, name, code=errno.ENOSPC):
    """Make the atomic write of any file called ``name`` fail with ``code``; returns the paths hit."""
    real = os.replace
    hits = []

    def replace(source, target, *args, **kwargs):
        if os.path.basename(os.fspath(target)) == name:
            hits.append(os.fspath(target))
            raise OSError(code, os.strerror(code), os.fspath(target))
        return real(source, target, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    return hits


def run(argv, capsys):
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, [line for line in captured.err.splitlines() if line.strip()]


def temporaries(folder):
    return [os.path.join(d, n) for d, _, names in os.walk(folder) for n in names if n.startswith(".tmp-")]


def assert_write_failed(code, out, err, folder, name, success_words):
    assert code == 1, (code, err[-3:])
    assert len(err) == 1, err[-5:]
    assert err[0].startswith("effscale: error: no space left on device writing ") and name in err[0], err[0]
    assert "rerun the same command" in err[0]
    assert not any(word in out for word in success_words), out
    assert temporaries(folder) == []


def test_a_failed_atomic_write_names_the_file_keeps_the_old_one_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "state.json"
    write_json(str(path), {"epoch": 1})
    fail_writes_of(monkeypatch, "state.json")
    with pytest.raises(OutputError, match=f"no space left on device writing {path} "):
        write_json(str(path), {"epoch": 2})
    assert json.loads(path.read_text()) == {"epoch": 1} and temporaries(tmp_path) == []
    fail_writes_of(monkeypatch, "model.keras", errno.EROFS)
    with pytest.raises(OutputError, match="read-only file system writing .*model.keras; make its folder writable"):
        with atomic_path(str(tmp_path / "model.keras")) as temporary:
            open(temporary, "w").write("x")
    assert temporaries(tmp_path) == []


def test_too_little_space_for_a_checkpoint_is_refused_before_hdf5_starts(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    import keras

    from effscale.training.checkpoint import save_checkpoint

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**6, 10**6 - 100, 100))
    with pytest.raises(OutputError, match=r"epoch-0001.weights.h5 \(needs about .*, 100 B free\)"):
        save_checkpoint(model, str(tmp_path), {"epoch": 1})
    assert not os.path.exists(tmp_path / "checkpoint" / "epoch-0001.weights.h5") and temporaries(tmp_path) == []


@pytest.mark.slow
def test_train_with_a_full_disk_then_resumes(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    argv = TRAIN + ["--epochs", "2", "--out", str(out)]
    hits = fail_writes_of(monkeypatch, "epoch-0002.weights.h5")
    code, stdout, err = run(argv, capsys)
    assert hits, "the fault was never reached"
    assert_write_failed(code, stdout, err, out, "epoch-0002.weights.h5", ["test top-1", "epochs"])
    monkeypatch.undo()  # space is freed
    code, stdout, err = run(argv, capsys)
    assert code == 0, err[-3:]
    record = json.loads((out / "results.json").read_text())
    assert record["epochs_done"] == 2 and record["resumed_from_epochs"] == [1]
    assert temporaries(out) == []


@pytest.mark.slow
def test_search_with_a_full_disk_reports_no_success_then_resumes(tmp_path, monkeypatch, capsys):
    project = tmp_path / "search"
    argv = SEARCH + ["--project-dir", str(project)]
    hits = fail_writes_of(monkeypatch, "trials.csv")  # the results written after the first trial
    code, stdout, err = run(argv, capsys)
    assert hits
    assert_write_failed(code, stdout, err, project, "trials.csv", ["wrote", "best"])
    assert not (project / "trials.csv").exists() and not (project / "best_genotype.json").exists()
    monkeypatch.undo()
    code, stdout, err = run(argv, capsys)  # the same command
    assert code == 0, err[-3:]
    assert "wrote" in stdout
    import csv

    with open(project / "trials.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["trial_id"] for r in rows] == ["0", "1"] and rows[0]["status"] == "COMPLETED"
    assert temporaries(project) == []


def test_a_write_inside_a_trial_ends_the_search_instead_of_failing_the_trial(tmp_path, monkeypatch, capsys):
    project = tmp_path / "search"
    real = os.replace

    def replace(source, target, *args, **kwargs):  # the trial's own training record
        if os.sep + "trainings" + os.sep in os.fspath(target):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(target))
        return real(source, target, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    code, stdout, err = run(SEARCH + ["--project-dir", str(project)], capsys)
    assert_write_failed(code, stdout, err, project, os.sep + "trainings" + os.sep, ["wrote"])
    trials = [json.loads(open(os.path.join(d, "trial.json")).read())
              for d, _, names in os.walk(project / "tuner") if "trial.json" in names]
    assert all(t["status"] not in ("FAILED", "INVALID", "COMPLETED") for t in trials)  # none recorded as done


@pytest.mark.slow
def test_family_with_a_full_disk_then_resumes_without_retraining(tmp_path, monkeypatch, capsys):
    config = {"dataset": "digits", "baseline": "tiny", "reference_family": False, "search": {"enabled": False},
              "scaling": {"family": "phi=0", "base": "w=0.25,d=0.5,r=8"}, "training": {"epochs": 1, "batch_size": 64}}
    path = tmp_path / "family.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "run"
    argv = ["family", "--config", str(path), "--out", str(out), "--quiet"]
    hits = fail_writes_of(monkeypatch, "report.md")  # the last file a family writes
    code, stdout, err = run(argv, capsys)
    assert hits
    assert_write_failed(code, stdout, err, out, "report.md", ["wrote", "finished", "report.html"])
    results = [os.path.join(d, "results.json") for d, _, names in os.walk(out) if "results.json" in names
               and os.path.basename(d) != "run"]
    trained = {p: os.stat(p).st_mtime_ns for p in results}
    assert trained, "the member trained before the report"
    monkeypatch.undo()
    code, stdout, err = run(argv, capsys)
    assert code == 0, err[-3:]
    assert (out / "report.md").exists() and temporaries(out) == []
    assert {p: os.stat(p).st_mtime_ns for p in trained} == trained  # resumed: the member was not trained again


@pytest.fixture
def small_tmpfs():
    folder = tempfile.mkdtemp()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=120k", "tmpfs", folder], capture_output=True)
    if done.returncode != 0:
        os.rmdir(folder)
        pytest.skip("mounting a tmpfs needs root (CAP_SYS_ADMIN); the injected faults above cover the same writes")
    yield folder
    subprocess.run(["umount", folder], check=True)
    os.rmdir(folder)


@pytest.mark.slow
def test_train_on_a_real_full_tmpfs_is_one_line_and_resumes_after_it_grows(small_tmpfs, capsys):
    out = os.path.join(small_tmpfs, "run")
    argv = TRAIN + ["--epochs", "2", "--out", out]
    code, stdout, err = run(argv, capsys)
    assert_write_failed(code, stdout, err, out, ".weights.h5", ["test top-1"])
    subprocess.run(["mount", "-o", "remount,size=4m", small_tmpfs], check=True)  # space is freed
    code, stdout, err = run(argv, capsys)
    assert code == 0, err[-3:]
    assert json.loads(open(os.path.join(out, "results.json")).read())["epochs_done"] == 2


def test_build_with_a_full_disk_is_one_line(tmp_path, monkeypatch, capsys):
    out = tmp_path / "m.keras"
    fail_writes_of(monkeypatch, "m.keras")  # `build` printed a traceback
    code, stdout, err = run(["build", MICRO, "--variant", "w=1,d=1,r=16", "--classes", "3", "--out", str(out)], capsys)
    assert_write_failed(code, stdout, err, tmp_path, "m.keras", ["wrote"])
    assert not out.exists()
