"""The effscale command: output, saved models, and one-line errors with exit code 2."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from effscale import cli

from effscale.model import cost
from effscale.model.zoo import REGISTRY

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def effscale(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "effscale.cli", *args], capture_output=True, text=True,
                          env=ENV, cwd=cwd, timeout=300)


def test_zoo_lists_every_registered_baseline(capsys):
    assert cli.main(["zoo"]) == 0
    out = capsys.readouterr().out
    for name, baseline in REGISTRY.items():
        assert name in out and baseline.genotype.encode() in out
    assert cli.main(["zoo", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert set(listed) == set(REGISTRY)


def test_describe_reports_the_scaled_stage_table(capsys):
    assert cli.main(["describe", "efficientnet-b0", "--variant", "b3", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["cost"]["parameters"] == 12_320_535
    assert data["variant"]["resolution"] == 300
    assert [s["repeats"] for s in data["stages"]] == [2, 3, 3, 5, 5, 6, 2]  # ceil(1.4 * r)
    assert [s["filters_out"] for s in data["stages"]] == [24, 32, 48, 96, 136, 232, 384]
    assert data["stages"][-1]["output_size"] == 10
    assert cli.main(["describe", "efficientnet-b0", "--variant", "b3"]) == 0
    text = capsys.readouterr().out
    assert "12,320,535" in text and "resolution 300" in text


def test_describe_family(capsys):
    assert cli.main(["describe", "efficientnet-b0", "--family", "b0-b7", "--json"]) == 0
    family = json.loads(capsys.readouterr().out)["family"]
    assert [r["cost"]["parameters"] for r in family] == [
        cost.parameter_count("efficientnet-b0", f"b{i}") for i in range(8)]
    macs = [r["cost"]["multiply_adds"] for r in family]
    assert macs == sorted(macs)


@pytest.mark.slow
def test_built_model_loads_where_effscale_is_not_importable(tmp_path):
    path = tmp_path / "tiny.keras"
    done = effscale("build", "tiny", "--variant", "w=0.5,d=0.5,r=32", "--classes", "5", "--out", str(path))
    assert done.returncode == 0, done.stderr
    assert path.stat().st_size > 0
    assert not [p for p in os.listdir(tmp_path) if p != "tiny.keras"]  # no temporary left behind

    images = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    np.save(tmp_path / "images.npy", images)
    script = textwrap.dedent(f"""
        import sys
        sys.modules["effscale"] = None  # any import of effscale now fails
        import keras, numpy as np
        model = keras.saving.load_model({str(path)!r})
        np.save({str(tmp_path / "theirs.npy")!r}, model.predict(np.load({str(tmp_path / "images.npy")!r}), verbose=0))
        print(sorted(m for m in sys.modules if m.startswith("effscale")))
    """)
    fresh = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=ENV,
                           cwd=tmp_path, timeout=300)
    assert fresh.returncode == 0, fresh.stderr
    assert fresh.stdout.strip().endswith("['effscale']")  # only the blocker entry

    import keras

    ours = keras.saving.load_model(path)
    np.testing.assert_allclose(np.load(tmp_path / "theirs.npy"), ours.predict(images, verbose=0), atol=1e-6)


@pytest.mark.parametrize("args,named", [
    (["describe", "efficientnet-b9"], "unknown genotype"),
    (["describe", "stem32_head1280_res224_swish-mb_r1_k4_s1_e1_c16"], "kernel"),
    (["describe", "efficientnet-b0", "--variant", "b12"], "unknown variant"),
    (["describe", "efficientnet-b0", "--variant", "phi=-40"], "phi"),
    (["describe", "efficientnet-b0", "--variant", "w=-1,d=1,r=224"], "width"),
    (["describe", "efficientnet-b0", "--variant", "phi=1,alpha=100"], "alpha"),
    (["describe", "efficientnet-b0", "--family", "b5-b2"], "family"),
    (["describe", "missing.json"], "does not exist"),
    (["describe"], "required"),
    (["frobnicate"], "invalid choice"),
    (["build", "tiny", "--out", "model.h5"], ".keras"),
    (["build", "tiny", "--out", "/no/such/folder/m.keras"], "not writable"),
    (["build", "tiny", "--classes", "0", "--out", "m.keras"], "classes"),
])
def test_bad_input_gives_one_line_and_exit_2(args, named, tmp_path):
    done = effscale(*args, cwd=tmp_path)
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = [line for line in done.stderr.splitlines() if line.startswith("effscale")]
    assert len(lines) == 1 and named in lines[0], done.stderr
    assert "Traceback" not in done.stderr
    assert os.listdir(tmp_path) == []  # nothing half-written
