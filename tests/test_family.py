"""The family pipeline end to end: search -> scale -> train -> report, killed and resumed."""

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import yaml

from effscale import cli
from effscale.config import FamilyConfig
from effscale.errors import UserError
from effscale.family import run_family, run_status
from effscale.search.proxy import ProxySettings, write_proxy_file

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}

MINIATURE = {
    "dataset": "digits",
    "baseline": "tiny",
    "search": {"oracle": "evolution", "cost": "macs", "target": 1.0e6, "trials": 2, "epochs": 1,
               "resolution": 16, "width": 0.25},
    "scaling": {"family": "phi=0;phi=1", "base": "w=0.5,d=0.5,r=16"},
    "training": {"epochs": 3, "batch_size": 64},
}


def tree_digest(path) -> str:
    digest = hashlib.sha256()
    for root, dirs, files in sorted(os.walk(path)):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            digest.update(full.encode())
            with open(full, "rb") as handle:
                digest.update(handle.read())
    return digest.hexdigest()


def read_state(run_dir):
    try:
        with open(os.path.join(run_dir, "state.json")) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def family_command(config_path, run_dir):
    return [sys.executable, "-m", "effscale.cli", "family", "--config", str(config_path), "--out", str(run_dir),
            "--quiet"]


@pytest.fixture(scope="module")
def resumed_run(tmp_path_factory):
    """A miniature family run killed (SIGKILL) during its second variant's training, then rerun."""
    folder = tmp_path_factory.mktemp("family")
    config_path = folder / "family.yaml"
    # The search trains through a proxy file (cosine, half the training data) with two seeds per trial.
    write_proxy_file(str(folder / "proxy.json"), ProxySettings(epochs=1, schedule="cosine"), resolution=16,
                     width=0.25, train_fraction=0.5)
    config = {**MINIATURE, "search": {**MINIATURE["search"], "proxy": str(folder / "proxy.json"), "seeds": 2}}
    config_path.write_text(yaml.safe_dump(config))
    run_dir = folder / "run"
    process = subprocess.Popen(family_command(config_path, run_dir), env=ENV, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 600
    killed_state = None
    while time.time() < deadline and process.poll() is None:
        state = read_state(run_dir)
        second = (state or {}).get("stages", {}).get("train:phi1", {})
        if second.get("status") == "running":
            time.sleep(4)  # well inside its training
            process.send_signal(signal.SIGKILL)
            process.wait()
            killed_state = read_state(run_dir)
            killed_state["first_member_digest"] = tree_digest(run_dir / "variants" / "phi0")
            break
        time.sleep(0.5)
    assert killed_state is not None, f"never saw the second variant training: {process.stderr.read()[-2000:]}"
    finished = subprocess.run(family_command(config_path, run_dir), env=ENV, capture_output=True, text=True,
                              timeout=900)
    assert finished.returncode == 0, finished.stderr[-3000:]
    return run_dir, killed_state, read_state(run_dir)


def test_killed_run_resumes_without_retraining_the_first_variant(resumed_run):
    run_dir, killed, final = resumed_run
    assert killed["stages"]["train:phi0"]["status"] == "done"
    assert killed["stages"]["train:phi1"]["status"] == "running"
    stages = final["stages"]
    assert stages["search"]["attempts"] == 1
    assert stages["train:phi0"]["attempts"] == 1                                  # not retrained
    assert stages["train:phi0"]["finished"] == killed["stages"]["train:phi0"]["finished"]
    assert stages["train:phi1"]["attempts"] == 2 and stages["train:phi1"]["status"] == "done"
    assert [s["status"] for s in stages.values()].count("done") == len(stages)
    assert tree_digest(run_dir / "variants" / "phi0") == killed["first_member_digest"]  # its files untouched
    previous = json.loads((run_dir / "state.json.previous").read_text())  # the recovery copy is a valid state
    assert set(previous["stages"]) <= set(stages)


def test_run_produces_results_plots_and_both_report_pages(resumed_run, assert_every_number_names_its_split):
    run_dir = resumed_run[0]
    results = json.loads((run_dir / "results.json").read_text())
    search = json.loads((run_dir / "search" / "search.json").read_text())["config"]
    assert (search["proxy"]["schedule"], search["train_fraction"], search["seeds"]) == ("cosine", 0.5, 2)
    assert all(len(t["accuracy_seeds"]) == 2 for t in results["search"]["trials"])
    assert [v["name"] for v in results["variants"]] == ["phi0", "phi1"]
    assert len(results["search"]["trials"]) == 2
    for variant in results["variants"]:
        assert 0.0 <= variant["test_top1"] <= 1.0 and variant["parameters"] > 0 and variant["multiply_adds"] > 0
        assert 0.0 <= variant["validation_top1"] <= 1.0 and variant["test_examples"] == 360
    assert results["search"]["split"] == "validation"
    assert_every_number_names_its_split(results)
    from PIL import Image

    for plot in ("accuracy_vs_macs.png", "search_history.png"):
        with Image.open(run_dir / plot) as image:
            assert image.format == "PNG" and image.size[0] > 100 and image.size[1] > 100
            assert len(set(image.convert("L").getdata())) > 10  # something is drawn
    assert (run_dir / "logs" / "phi0").is_dir()  # TensorBoard logs under one log dir


def test_report_numbers_equal_the_results_json(resumed_run):
    run_dir = resumed_run[0]
    results = json.loads((run_dir / "results.json").read_text())
    markdown = (run_dir / "report.md").read_text()
    page = (run_dir / "report.html").read_text()
    family_table = markdown.split("## Family")[1].split("##")[0]
    rows = [line.strip("|").split("|") for line in family_table.splitlines() if line.startswith("| phi")]
    assert len(rows) == len(results["variants"])
    for cells, variant in zip(rows, results["variants"]):
        cells = [c.strip() for c in cells]
        assert cells[0] == variant["name"]
        assert int(cells[4].replace(",", "")) == variant["parameters"]
        assert float(cells[5].replace(",", "")) == pytest.approx(variant["multiply_adds"] / 1e6, abs=0.005)
        assert float(cells[7]) == pytest.approx(variant["test_top1"], abs=5e-5)
        assert f"{variant['test_top1']:.4f}" in page and f"{variant['parameters']:,}" in page
    assert results["baseline"]["genotype"] in markdown


def test_status_reports_every_stage(resumed_run, capsys):
    run_dir = resumed_run[0]
    assert cli.main(["status", str(run_dir)]) == 0
    out = capsys.readouterr().out
    for stage in ("search", "scaling", "train:phi0", "train:phi1", "report"):
        assert re.search(rf"^{re.escape(stage)}\s+done", out, re.MULTILINE), out


def test_finished_run_reruns_without_training(resumed_run):
    run_dir = resumed_run[0]
    before = read_state(run_dir)
    started = time.time()
    results = run_family(MINIATURE, str(run_dir), verbose=0)
    assert time.time() - started < 60
    after = read_state(run_dir)
    assert {k: v["attempts"] for k, v in after["stages"].items()} == {
        k: v["attempts"] for k, v in before["stages"].items()}
    assert len(results["variants"]) == 2


@pytest.mark.parametrize("change,named", [
    ({"trainng": {"epochs": 1}}, "'trainng'"),
    ({"training": {"epochs": "ten"}}, "'training.epochs'"),
    ({"search": {"oracle": "annealing"}}, "'search.oracle'"),
    ({"search": {"target": -5}}, "'search.target'"),
    ({"scaling": {"family": "b9-b12"}}, "'scaling.family'"),
    ({"dataset": None}, "'dataset'"),
    ({"baseline": "efficientnet-b9"}, "'baseline'"),
    ({"training": {"recipe": {"optimiser": "sgd"}}}, "'training.recipe'"),
])
def test_invalid_config_fails_before_training_and_leaves_old_run_untouched(change, named, tmp_path, resumed_run):
    config = {**MINIATURE, **change}
    if config.get("dataset") is None:
        config.pop("dataset")
    with pytest.raises(UserError, match=re.escape(named)):
        FamilyConfig.from_dict(config)

    run_dir = resumed_run[0]
    digest = tree_digest(run_dir)
    config_path = tmp_path / "bad.yaml"
    config_path.write_text(yaml.safe_dump(config))
    done = subprocess.run(family_command(config_path, run_dir), env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert named in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert tree_digest(run_dir) == digest


def test_a_different_config_does_not_overwrite_an_earlier_run(resumed_run):
    run_dir = resumed_run[0]
    digest = tree_digest(run_dir)
    with pytest.raises(UserError, match="different configuration"):
        run_family({**MINIATURE, "training": {"epochs": 5}}, str(run_dir), verbose=0)
    assert tree_digest(run_dir) == digest


def test_toml_config_and_flags(tmp_path):
    path = tmp_path / "family.toml"
    path.write_text('dataset = "digits"\n[search]\ntrials = 3\ntarget = 2e6\n[scaling]\nfamily = ["b0", "phi=1"]\n')
    config = FamilyConfig.load(str(path), {"training.epochs": 2})
    assert (config.search.trials, config.search.target, config.scaling.family, config.training.epochs) == (
        3, 2e6, "b0;phi=1", 2)
    with pytest.raises(UserError, match="does not parse"):
        (tmp_path / "broken.toml").write_text("dataset = ")
        FamilyConfig.load(str(tmp_path / "broken.toml"))
    with pytest.raises(UserError, match="no effscale family run"):
        run_status(str(tmp_path))
