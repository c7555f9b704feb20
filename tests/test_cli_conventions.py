"""Command-line conventions: --version, bare usage, status --json, and a quiet console."""

import json
import os
import re
import subprocess
import sys

import pytest

import effscale

# What TensorFlow's C++ (absl) logging, CUDA probing and Python-side warnings look like on stderr.
NOISE = re.compile(r"^([IWEF]\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ \S+:\d+\]|WARNING: All log messages before absl"
                   r"|WARNING:(absl|tensorflow):|INFO: Created TensorFlow Lite|.*(cuda|cuInit|oneDNN|Warning:))",
                   re.IGNORECASE)


def effscale_command(*args, env=None, **kwargs):
    environment = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # as a user's shell
    environment.update(env or {})
    return subprocess.run([sys.executable, "-m", "effscale.cli", *args], capture_output=True, text=True,
                          env=environment, timeout=600, **kwargs)


def test_version_prints_the_package_version():
    done = effscale_command("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"effscale {effscale.__version__}"


def test_bare_effscale_prints_usage_with_every_command():
    done = effscale_command()
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: effscale")
    for command in ("zoo", "describe", "build", "search", "train", "family", "status", "report", "demo"):
        assert re.search(rf"^\s+{command}\s", done.stdout, re.MULTILINE), command
    assert done.stderr == ""


@pytest.mark.slow
def test_a_tiny_train_prints_nothing_from_tensorflow_logging(tmp_path):
    done = effscale_command("train", "tiny", "--variant", "w=0.25,d=0.25,r=16", "--dataset", "digits", "--epochs",
                            "1", "--out", str(tmp_path / "run"))
    assert done.returncode == 0, done.stderr[-3000:]
    noise = [line for line in done.stderr.splitlines() if NOISE.match(line)]
    assert noise == [], "\n".join(noise)
    assert "top-1" in done.stdout  # it did train and report


def test_family_train_epochs_sets_its_key_and_the_removed_old_name_is_refused(capsys):
    from effscale.cli import make_parser

    parser = make_parser()
    args = parser.parse_args(["family", "--out", "x", "--dataset", "digits", "--train-epochs", "7", "--proxy-epochs", "3"])
    assert (args.train_epochs, args.proxy_epochs) == (7, 3)
    with pytest.raises(SystemExit) as caught:
        parser.parse_args(["family", "--out", "x", "--dataset", "digits", "--epochs", "7"])
    assert caught.value.code == 2 and "--epochs" in capsys.readouterr().err
