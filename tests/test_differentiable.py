"""Differentiable (supernet) search on digits: the cost term steers, the logits move and reload,
a killed search resumes from its last saved epoch, and the derived genotype is a recorded trial."""

import csv
import itertools
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import effscale
import effscale.cli
from effscale.model.cost import cost
from effscale.data.pipeline import DataSpec, load_data
from effscale.search.oneshot.differentiable import (CHECKPOINT, CostTable, SupernetOptions, check_supported,
                                            load_logits, run_differentiable_search)
from effscale.common.errors import UserError
from effscale.search.objectives import Reward
from effscale.search import design_variant, run_search
from effscale.search.space import SearchSpace

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Two small MBConv stages (the one tests/test_search.py uses): few layers keep the supernet's
# one-off tracing short, which dominates these tests.
MICRO = "stem8_head32_res16_relu-mb_r1_k3_s2_e2_c8-mb_r1_k3_s2_e2_c16"
OPEN = ("kernel", "expand", "se", "repeats")
VARIANT = "w=1,d=1,r=8"
# A strong cost term and a fast logit learning rate, so one epoch of ~23 steps decides.
FAST = {"arch_learning_rate": 0.05, "cost_weight": 3.0}


def _macs(genotype):
    return cost(genotype, design_variant(genotype), classes=10).multiply_adds


def test_expected_cost_is_exact_one_hot_and_the_mean_over_the_space_when_uniform():
    space = SearchSpace("tiny", open=("kernel", "se", "repeats"), stages=(2, 3))
    table = CostTable(space, classes=10, kind="macs")
    names = list(space.names)
    every = [dict(zip(names, combo)) for combo in itertools.product(*(space.choices(n) for n in names))]
    macs = [_macs(space.to_genotype(values)) for values in every]
    uniform = {n: np.full(len(space.choices(n)), 1.0 / len(space.choices(n))) for n in names}
    assert table.expected(uniform) == pytest.approx(np.mean(macs), rel=1e-9)
    for values, expected in list(zip(every, macs))[::7]:
        one_hot = {n: np.eye(len(space.choices(n)))[space.choices(n).index(values[n])] for n in names}
        assert table.expected(one_hot) == pytest.approx(expected, rel=1e-12)


def test_unsupported_spaces_and_costs_are_user_errors(tmp_path, monkeypatch, capsys):
    # Filters and block are searched now (tests/test_oneshot.py); a reference stage the supernet
    # cannot compute is still refused before anything is written.
    check_supported(SearchSpace("tiny", open=("kernel", "filters", "block")), "macs")
    with pytest.raises(UserError, match="supports MBConv and depthwise-separable stages; stage 1 is Fused-MBConv"):
        run_search("efficientnetv2-b0", oracle="differentiable", open_choices=("kernel",), project_dir=str(tmp_path))
    with pytest.raises(UserError, match="cost 'latency' is not supported"):
        run_search("tiny", oracle="differentiable", cost="latency", target="5ms", open_choices=("kernel",),
                   project_dir=str(tmp_path))
    assert effscale.cli.main(["search", "--baseline", "tiny", "--supernet-epochs", "2", "--project-dir",
                              str(tmp_path)]) == 2
    assert "--supernet-epochs applies to --oracle differentiable only" in capsys.readouterr().err
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "chief")
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", "8000")
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")  # so that it is removed again afterwards
    with pytest.raises(UserError, match="runs in one process"):
        run_search("tiny", oracle="differentiable", open_choices=("kernel",), project_dir=str(tmp_path))
    assert not os.listdir(tmp_path)


def _search_command(directory):
    return ["search", "--baseline", MICRO, "--oracle", "differentiable", "--trials", "1", "--resolution", "8",
            "--open", ",".join(OPEN), "--target", "1e4", "--supernet-epochs", "3", "--cost-weight", "3",
            "--arch-learning-rate", "0.05", "--project-dir", str(directory)]


def _saved_epoch(checkpoint):
    with np.load(checkpoint) as archive:
        return json.loads(str(archive["meta"]))


@pytest.mark.slow
def test_a_killed_search_resumes_from_its_last_epoch_and_records_the_derived_genotype(tmp_path, capsys):
    directory = tmp_path / "project"
    checkpoint = directory / "supernet" / CHECKPOINT
    process = subprocess.Popen([sys.executable, "-m", "effscale.cli", *_search_command(directory)], cwd=ROOT,
                               env=dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3"),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)  # a real kill, at whatever the search was doing
    finally:
        process.wait()
    assert checkpoint.exists(), "the search process ended before saving an epoch"
    saved = _saved_epoch(checkpoint)
    done = saved["epoch"]
    assert 1 <= done < 3, "the search was killed after its supernet had finished"
    assert not (directory / "trials.csv").exists()

    assert effscale.cli.main(_search_command(directory)) == 0
    out = capsys.readouterr().out
    assert f"resuming {directory / 'supernet'} after epoch {done}" in out
    epochs_run = [line.split()[2].rstrip(":") for line in out.splitlines() if line.startswith("supernet epoch ")]
    assert epochs_run == [f"{e}/3" for e in range(done + 1, 4)], out  # no saved epoch redone
    history = load_logits(directory / "supernet")
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[:done] == saved["history"]  # the saved epochs' records are untouched

    space = SearchSpace(MICRO, open=OPEN)
    final = history[-1]["probabilities"]
    derived = space.to_genotype({n: space.choices(n)[int(np.argmax(final[n]))] for n in space.names})
    rows = list(csv.DictReader(open(directory / "trials.csv")))
    assert [(r["status"], r["genotype"]) for r in rows] == [("COMPLETED", derived.encode())]
    assert float(rows[0]["macs"]) == _macs(derived)
    assert effscale.load_genotype(str(directory / "best_genotype.json")) == derived
    assert effscale.cli.main(["trials", str(directory)]) == 0
    listing = capsys.readouterr().out
    assert "trials (1):" in listing and derived.encode() in listing


@pytest.mark.slow
def test_lower_cost_target_gives_fewer_macs_and_the_logits_move_and_reload(tmp_path):
    # Same supernet configuration as the search above: after it, the traced steps are reused.
    space = SearchSpace(MICRO, open=OPEN)
    data = load_data(DataSpec("digits", resolution=8, seed=0), batch_size=64)
    results = {}
    for name, target in (("low", 1e4), ("high", 1e10)):  # far below / above every genotype in the space
        results[name] = run_differentiable_search(space, data, VARIANT, Reward("macs", target),
                                                  SupernetOptions(epochs=1, **FAST),
                                                  directory=str(tmp_path / name), seed=0)
    for result in results.values():
        assert space.to_values(result.genotype) == result.values  # a genotype of the space
        assert result.epochs_run == 1 and result.resumed_from == 0
        moved = max(np.max(np.abs(np.asarray(p) - 1.0 / len(p))) for p in result.probabilities.values())
        assert moved > 0.1, result.probabilities
        history = load_logits(result.directory)
        assert history == result.history and [h["epoch"] for h in history] == [1]
        assert set(history[0]["probabilities"]) == set(space.names)
        assert os.path.getsize(os.path.join(result.directory, "logits.png")) > 1000
    assert _macs(results["low"].genotype) < _macs(results["high"].genotype)
    # The expected cost moved toward each target from the uniform distribution's.
    assert results["low"].history[0]["expected_cost"] < results["high"].history[0]["expected_cost"]
