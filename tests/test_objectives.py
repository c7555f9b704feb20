"""The MnasNet reward against hand-computed values, hard limits, and the Pareto front."""

import math

import pytest

from effscale.common.errors import UserError
from effscale.search.objectives import Limits, Reward, exponents, pareto_front, reward


def test_soft_reward_matches_hand_computed_values():
    # w = -0.07 on both sides of the target. 2 ** -0.07 = 0.952638..., 0.5 ** -0.07 = 1.049717...
    assert reward(0.8, 400e6, 400e6) == pytest.approx(0.8)
    assert reward(0.8, 800e6, 400e6) == pytest.approx(0.8 * 0.9526380)
    assert reward(0.8, 200e6, 400e6) == pytest.approx(0.8 * 1.0497166)
    assert reward(0.75, 312e6, 400e6) == pytest.approx(0.75 * math.exp(-0.07 * math.log(312 / 400)))
    # MnasNet's motivating example: 5% more accuracy is worth about 2x the cost.
    assert reward(1.0, 2.0, 1.0) == pytest.approx(0.952638, abs=1e-6)


def test_hard_reward_matches_hand_computed_values():
    assert reward(0.9, 100, 200, constraint="hard") == 0.9       # under target: alpha = 0
    assert reward(0.9, 200, 200, constraint="hard") == 0.9
    assert reward(0.9, 400, 200, constraint="hard") == pytest.approx(0.45)   # beta = -1: 0.9 * 200/400
    assert reward(0.6, 300, 100, constraint="hard") == pytest.approx(0.2)


def test_user_alpha_beta_and_reward_object():
    assert exponents("soft", alpha=-0.5, beta=-2.0) == (-0.5, -2.0)
    assert reward(0.9, 50, 100, alpha=-0.5) == pytest.approx(0.9 * 0.5 ** -0.5)
    assert reward(0.9, 200, 100, beta=-2.0) == pytest.approx(0.9 / 4)
    r = Reward("params", 1e6, "hard")
    assert r(0.5, 2e6) == pytest.approx(0.25)
    assert Reward.from_dict(r.to_dict()) == r


@pytest.mark.parametrize("kwargs", [dict(target=-1), dict(target=0), dict(target=float("nan")),
                                    dict(constraint="medium"), dict(cost="flops")])
def test_bad_reward_settings_are_user_errors(kwargs):
    settings = dict(cost="macs", target=1e6, constraint="soft") | kwargs
    with pytest.raises(UserError):
        Reward(**settings)


def test_limits_name_the_violated_limit():
    limits = Limits(max_macs=1e6, max_params=5e4)
    assert limits.violation({"macs": 5e5, "params": 4e4}) is None
    assert "multiply-adds" in limits.violation({"macs": 2e6, "params": 1})
    assert "parameters 60,000 exceed the limit 50,000" == limits.violation({"macs": 1, "params": 6e4})
    assert Limits(max_latency=0.001).violation({"latency": 0.002}).startswith("latency")
    with pytest.raises(UserError):
        Limits(max_macs=-3)


def test_pareto_front():
    points = [
        {"id": "a", "accuracy": 0.90, "cost": 10},
        {"id": "b", "accuracy": 0.80, "cost": 5},
        {"id": "c", "accuracy": 0.70, "cost": 8},    # dominated by b
        {"id": "d", "accuracy": 0.95, "cost": 20},
        {"id": "e", "accuracy": 0.90, "cost": 12},   # dominated by a
        {"id": "f", "accuracy": None, "cost": 1},    # no accuracy: skipped
    ]
    front = pareto_front(points)
    assert [p["id"] for p in front] == ["b", "a", "d"]
    # No point of the front is dominated by any point.
    for p in front:
        assert not any(q["accuracy"] >= p["accuracy"] and q["cost"] <= p["cost"] and q is not p
                       and (q["accuracy"] > p["accuracy"] or q["cost"] < p["cost"])
                       for q in points if q["accuracy"] is not None)
