"""The oracle registry is the one list: an oracle registered in one place shows up in the command
line's help, passes family config validation and is built by make_oracle."""

import keras_tuner
import pytest

from effscale import cli
from effscale.family.config import FamilyConfig
from effscale.common.errors import UserError
from effscale.search import make_oracle
from effscale.search.registry import register_oracle, unregister_oracle
from effscale.search.space import SearchSpace


class ThrowawayOracle(keras_tuner.oracles.RandomSearchOracle):
    """A stand-in strategy: Keras Tuner's random search under another name."""


@pytest.fixture
def throwaway():
    def build(max_trials, common, epochs, prescreen, options):
        return ThrowawayOracle(max_trials=max_trials, **common)

    register_oracle("throwaway", build, "a test-only oracle")
    yield "throwaway"
    unregister_oracle("throwaway")


def test_a_registered_oracle_is_in_the_help_the_family_config_and_make_oracle(throwaway, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["search", "--help"])
    assert exit_info.value.code == 0
    assert "throwaway" in capsys.readouterr().out

    config = FamilyConfig.from_dict({"dataset": "digits", "search": {"oracle": "throwaway"}})
    assert config.search.oracle == "throwaway"

    hp = SearchSpace("tiny", open=("kernel",)).hyperparameters()
    oracle = make_oracle("throwaway", 3, hp, seed=1)
    assert isinstance(oracle, ThrowawayOracle) and oracle.max_trials == 3
    assert oracle.objective.name == "reward" and oracle.objective.direction == "max"


def test_an_unregistered_oracle_is_refused_everywhere(capsys):
    with pytest.raises(UserError, match="unknown oracle 'throwaway'"):
        make_oracle("throwaway", 3, SearchSpace("tiny").hyperparameters())
    with pytest.raises(UserError, match="search.oracle"):
        FamilyConfig.from_dict({"dataset": "digits", "search": {"oracle": "throwaway"}})
    assert cli.main(["search", "--baseline", "tiny", "--oracle", "throwaway", "--project-dir", "unused"]) == 2
    assert "unknown oracle 'throwaway'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["search", "--help"])
    assert "throwaway" not in capsys.readouterr().out
