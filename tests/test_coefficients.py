"""The compound-coefficient grid search (EfficientNet step 1) as a Keras Tuner GridSearch."""

import time

import pytest

from effscale.family.coefficients import coefficient_grid, search_coefficients
from effscale.common.errors import UserError
from effscale.model.scaling import scale_genotype
from effscale.model.zoo import get_genotype


def test_grid_keeps_the_flops_constraint_and_spreads_out():
    triples = coefficient_grid(step=0.05, tolerance=0.1, count=6)
    assert len(triples) == 6 and len(set(triples)) == 6
    for alpha, beta, gamma in triples:
        assert abs(alpha * beta ** 2 * gamma ** 2 - 2) <= 0.1 + 1e-9
    assert len({t[0] for t in triples}) >= 3  # not all the same depth coefficient
    with pytest.raises(UserError):
        coefficient_grid(step=0.5, tolerance=0.001, low=1.0, high=1.0)


@pytest.mark.slow
def test_search_picks_a_grid_triple_by_accuracy_and_resumes(tmp_path):
    base = scale_genotype(get_genotype("tiny"), "w=0.25,d=0.5,r=16")
    found = search_coefficients(base, "digits", project_dir=str(tmp_path), epochs=1, max_trials=2)
    grid = coefficient_grid(count=2)
    assert (found["alpha"], found["beta"], found["gamma"]) in grid
    assert len(found["trials"]) == 2
    best = max(found["trials"], key=lambda t: t["validation_accuracy"])
    assert (best["alpha"], best["beta"], best["gamma"]) == (found["alpha"], found["beta"], found["gamma"])
    started = time.time()
    again = search_coefficients(base, "digits", project_dir=str(tmp_path), epochs=1, max_trials=2)
    assert again == found
    assert time.time() - started < 15  # reloaded from the tuner project, nothing retrained
