"""Differentiable (supernet) search on digits: the cost term steers, the logits move and reload,
a killed search resumes from its last saved epoch, and the derived genotype is a recorded trial."""

import itertools
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import effscale.cli
from effscale.cost import cost
from effscale.data import load_data
from effscale.differentiable import CHECKPOINT, CostTable, load_logits, run_differentiable_search
from effscale.errors import UserError
from effscale.objectives import Reward
from effscale.search import design_variant, run_search
from effscale.space import SearchSpace

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OPEN, STAGES = ("kernel", "expand", "se", "repeats"), (2, 3)
VARIANT = "w=0.25,d=1,r=8"
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


def test_unsupported_spaces_and_costs_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="does not search filters"):
        run_search("tiny", oracle="differentiable", open_choices=("kernel", "filters"), project_dir=str(tmp_path))
    with pytest.raises(UserError, match="does not search block"):
        run_search("tiny", oracle="differentiable", open_choices=("block",), project_dir=str(tmp_path))
    with pytest.raises(UserError, match="cost 'latency' is not supported"):
        run_search("tiny", oracle="differentiable", cost="latency", target="5ms", open_choices=("kernel",),
                   project_dir=str(tmp_path))
    assert not os.listdir(tmp_path)


def test_lower_cost_target_gives_fewer_macs_and_the_logits_move_and_reload(tmp_path):
    space = SearchSpace("tiny", open=OPEN, stages=STAGES)
    data = load_data("digits", resolution=8, batch_size=64, seed=0)
    results = {}
    for name, target in (("low", 1e4), ("high", 1e10)):  # far below / above every genotype in the space
        results[name] = run_differentiable_search(space, data, VARIANT, Reward("macs", target), epochs=1,
                                                  directory=str(tmp_path / name), seed=0, **FAST)
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
