"""Hostile input and damaged state, one failure class per test (issue 14).

Each test asserts the exit code, a single stderr line without a traceback, and that nothing
was written (or that the recovered state is complete). Slow cases that need a trained run
live beside their fixtures: tests/test_train.py (damaged checkpoints, Ctrl-C / SIGTERM),
tests/test_family.py and tests/test_search_cli.py (kill and resume).
"""

import io
import json
import os

import numpy as np
import pytest
from PIL import Image

from effscale import cli
from effscale.common.errors import UserError

TINY = ["--variant", "w=0.25,d=0.25,r=16", "--strategy", "default", "--verbose", "0", "--latency-runs", "0"]


def one_line_error(capsys, code, expected_code=2):
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line.startswith("effscale")]
    assert code == expected_code, err
    assert "Traceback" not in err and len(lines) == 1 and lines[0].startswith("effscale: error: "), err
    return lines[0]


def image_folder(root, corrupt: int = 1):
    """Two classes of six 12x12 PNGs, plus ``corrupt`` truncated JPEGs in class 'b'."""
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for index in range(6):
            pixels = (rng.random((12, 12, 3)) * 255).astype("uint8") + (0 if label == "a" else 60)
            Image.fromarray(pixels).save(root / label / f"{index}.png")
    for index in range(corrupt):
        buffer = io.BytesIO()
        Image.fromarray((rng.random((32, 32, 3)) * 255).astype("uint8")).save(buffer, "JPEG")
        (root / "b" / f"broken{index}.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    return root


# -- bounds ----------------------------------------------------------------------------------

def test_a_billion_repeats_is_refused_at_once(capsys):
    code = cli.main(["describe", "stem16_head64_res32_relu-mb_r1000000000_k3_s2_e4_c24"])
    assert "repeats must be in 1..100" in one_line_error(capsys, code)


def test_what_would_be_built_is_bounded_before_building(tmp_path, capsys, monkeypatch):
    out = tmp_path / "huge.keras"
    code = cli.main(["build", "stem16_head64_res512_relu-mb_r4_k3_s1_e16_c100000", "--variant", "w=4,d=1,r=4096",
                     "--out", str(out)])
    line = one_line_error(capsys, code)
    assert "parameters, more than the limit" in line and "EFFSCALE_MAX_PARAMS" in line
    assert not out.exists()
    code = cli.main(["--limit-blocks", "1000", "describe", "stem16_head64_res32_relu-mb_r100_k3_s2_e4_c24",
                     "--variant", "w=1,d=16,r=32"])
    assert "1,600 blocks, more than the limit of 1,000" in one_line_error(capsys, code)
    # the limits are the user's to move: lowered, a tiny model is refused; raised, it builds
    from effscale.model.builder import build

    monkeypatch.setenv("EFFSCALE_MAX_MULTIPLY_ADDS", "1000")
    with pytest.raises(UserError, match="multiply-adds, more than the limit of 1,000"):
        build("tiny", "w=0.25,d=0.25,r=16", classes=3)
    monkeypatch.setenv("EFFSCALE_MAX_MULTIPLY_ADDS", "1e13")
    assert build("tiny", "w=0.25,d=0.25,r=16", classes=3).output_shape == (None, 3)


# -- validate before writing -------------------------------------------------------------------

def test_corrupt_image_is_named_and_refused_before_anything_is_written(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder = image_folder(tmp_path / "images")
    out = tmp_path / "run"
    code = cli.main(["train", "tiny", "--dataset", str(folder), "--out", str(out), "--epochs", "1", *TINY])
    line = one_line_error(capsys, code)
    assert "1 file(s) do not decode" in line and "broken0.jpg" in line and "--skip-corrupt-images" in line
    assert not out.exists()


def test_search_refuses_a_corrupt_image_before_any_trial(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder = image_folder(tmp_path / "images")
    project = tmp_path / "search"
    code = cli.main(["search", "--baseline", "tiny", "--dataset", str(folder), "--trials", "1",
                     "--project-dir", str(project), "--quiet"])
    assert "broken0.jpg" in one_line_error(capsys, code)
    assert not project.exists()  # no trial marked FAILED with TensorFlow's reason: nothing ran


@pytest.mark.slow
def test_skip_corrupt_images_trains_on_the_rest_and_the_check_is_cached(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("EFFSCALE_SKIP_CORRUPT_IMAGES", raising=False)
    folder = image_folder(tmp_path / "images", corrupt=2)
    out = tmp_path / "run"
    code = cli.main(["train", "tiny", "--dataset", str(folder), "--out", str(out), "--epochs", "1",
                     "--batch-size", "4", "--skip-corrupt-images", "--json", *TINY])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "skipping 2 corrupt image(s) of 14" in captured.err and "Traceback" not in captured.err
    record = json.loads(captured.out)
    data = record["data"]
    assert data["train_size"] + data["validation_size"] + data["test_size"] == 12
    from effscale.data import image_check

    cache = json.loads(open(image_check._cache_path(str(folder))).read())
    assert len(cache) == 14 and sum(reason is not None for _, reason in cache.values()) == 2
    # a rerun decodes nothing it has seen: a file whose cached verdict is "fine" stays fine
    monkeypatch.setattr(image_check, "_decode_error", lambda path: pytest.fail(f"decoded {path} again"))
    assert len(image_check.find_corrupt(str(folder), sorted(cache))) == 2


def test_family_with_a_missing_dataset_writes_nothing(tmp_path, capsys):
    out = tmp_path / "family"
    code = cli.main(["family", "--dataset", str(tmp_path / "no-such-folder"), "--out", str(out), "--quiet"])
    assert "unknown dataset" in one_line_error(capsys, code)
    assert not out.exists()  # so the corrected command may use the same --out


@pytest.mark.parametrize("where", ["under-a-file", "proc"])
def test_unwritable_out_is_one_line_and_creates_nothing(where, tmp_path, capsys):
    (tmp_path / "file").write_text("")
    out = tmp_path / "file" / "run" if where == "under-a-file" else "/proc/effscale-run"
    code = cli.main(["train", "tiny", "--out", str(out), "--epochs", "1", *TINY])
    assert "cannot create it" in one_line_error(capsys, code)
    assert not os.path.exists(out)
    code = cli.main(["family", "--dataset", "digits", "--out", str(out), "--quiet"])
    assert "cannot create it" in one_line_error(capsys, code)


# -- damaged files ------------------------------------------------------------------------------

def test_truncated_keras_file_is_not_a_valid_keras_file(tmp_path, capsys):
    from effscale.model.builder import build

    path = tmp_path / "model.keras"
    build("tiny", "w=0.25,d=0.25,r=16", classes=3).save(path)
    path.write_bytes(path.read_bytes()[:2000])
    code = cli.main(["evaluate", str(path), "--dataset", "digits"])
    line = one_line_error(capsys, code)
    assert "is not a valid Keras file" in line and "not found" not in line.lower()
    from effscale.model.weights import read_weights

    with pytest.raises(UserError, match="is not a valid Keras file"):
        read_weights(str(path))


def test_corrupt_family_state_names_the_file_and_the_recovery(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    from effscale.common.migrations import FORMAT_VERSION

    state = {"format_version": FORMAT_VERSION, "config": {}, "created": 0,
             "stages": {"search": {"status": "done", "attempts": 1}}}
    (run / "state.json.previous").write_text(json.dumps(state))
    (run / "state.json").write_text(json.dumps(state)[:25])
    code = cli.main(["status", str(run)])
    line = one_line_error(capsys, code)
    assert str(run / "state.json") in line and f"cp {run / 'state.json.previous'} {run / 'state.json'}" in line
    os.replace(run / "state.json.previous", run / "state.json")  # the recovery it names works
    assert cli.main(["status", str(run)]) == 0 and "search" in capsys.readouterr().out
    (run / "state.json").write_text("[]")
    assert "move" in one_line_error(capsys, cli.main(["status", str(run)]))  # no previous version: start again


def test_multiworker_warns_that_tensorflow_listens_on_every_interface():
    from effscale.training.strategy import _listening_warning

    warning = _listening_warning({"cluster": {"worker": ["127.0.0.1:4001", "127.0.0.1:4002"]},
                                  "task": {"type": "worker", "index": 0}})
    assert "port 4001 of every network interface" in warning and "127.0.0.1" in warning


@pytest.mark.slow
def test_mirrored_on_cpu_splits_on_request_and_warns_otherwise():
    import subprocess
    import sys

    script = ("import sys; from effscale.training.strategy import resolve_strategy; "
              "print(resolve_strategy('mirrored', cpu_replicas=int(sys.argv[1]) or None).num_replicas_in_sync)")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("TF_CONFIG", None)
    runs = {n: subprocess.Popen([sys.executable, "-c", script, str(n)], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for n in (0, 3)}
    (silent_out, silent_err), (split_out, split_err) = (runs[0].communicate(timeout=120),
                                                        runs[3].communicate(timeout=120))
    assert silent_out.split()[-1] == "1" and "runs one replica; pass --cpu-replicas N" in silent_err
    assert split_out.split()[-1] == "3" and "warning" not in split_err
