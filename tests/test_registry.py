"""The oracle registry is the one list: an oracle registered in one place (with its own option and
flag) shows up in the command line's help, passes family config validation, is built by make_oracle
and comes back from a resumed project; no module outside the registry tests an oracle's name."""

import ast
import json
import pathlib

import keras_tuner
import pytest

from effscale import cli
from effscale.common.checks import int_flag
from effscale.family.config import FamilyConfig
from effscale.common.errors import UserError
from effscale.search import make_oracle
from effscale.search.records import load_oracle
from effscale.search.registry import ORACLES, OracleFlag, register_oracle, unregister_oracle
from effscale.search.space import SearchSpace

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "effscale"
MICRO = "stem8_head32_res16_relu-mb_r1_k3_s2_e2_c8-mb_r1_k3_s2_e2_c16"


class ThrowawayOracle(keras_tuner.oracles.RandomSearchOracle):
    """A stand-in strategy: Keras Tuner's random search under another name."""


@pytest.fixture
def throwaway():
    def build(max_trials, common, epochs, prescreen, options):
        oracle = ThrowawayOracle(max_trials=max_trials, **common)
        oracle.spread = options.get("spread", 1)
        return oracle

    register_oracle("throwaway", build, "a test-only oracle", options=("spread",),
                    flags=(OracleFlag("--spread", "spread", int_flag(1, 100), "how far apart its draws are"),))
    yield "throwaway"
    unregister_oracle("throwaway")


def test_a_registered_option_and_flag_reach_the_help_the_family_config_and_the_oracle(throwaway, capsys):
    with pytest.raises(SystemExit):
        cli.main(["search", "--help"])
    assert "throwaway: how far apart its draws are" in " ".join(capsys.readouterr().out.split())
    config = FamilyConfig.from_dict({"dataset": "digits", "search": {"oracle": "throwaway",
                                                                     "oracle_options": {"spread": 3}}})
    assert config.search.oracle_options == {"spread": 3}
    with pytest.raises(UserError, match="oracle 'throwaway' has no option 'sprea': its options are spread"):
        FamilyConfig.from_dict({"dataset": "digits", "search": {"oracle": "throwaway", "oracle_options": {"sprea": 3}}})
    assert make_oracle("throwaway", 2, SearchSpace("tiny").hyperparameters(), spread=4).spread == 4
    # the flag belongs to its oracle: with another one it is one line, exit 2, nothing written
    assert cli.main(["search", "--baseline", "tiny", "--oracle", "evolution", "--spread", "3",
                     "--project-dir", "unused"]) == 2
    assert capsys.readouterr().err.strip().endswith("--spread applies to --oracle throwaway only")
    assert not pathlib.Path("unused").exists()


def test_a_registered_option_comes_back_from_a_resumed_project(throwaway, tmp_path, capsys):
    project = tmp_path / "p"

    def search(trials, spread="3"):
        return cli.main(["search", "--baseline", MICRO, "--open", "kernel", "--resolution", "8", "--oracle",
                         "throwaway", "--spread", spread, "--project-dir", str(project), "--quiet", "--trials", trials])

    assert search("1") == 0
    assert json.loads((project / "search.json").read_text())["config"]["oracle_options"] == {"spread": 3}
    oracle = load_oracle(project)
    assert isinstance(oracle, ThrowawayOracle) and oracle.spread == 3 and len(oracle.trials) == 1
    assert search("2") == 0  # resumes: the first trial is kept
    assert len(load_oracle(project).trials) == 2
    capsys.readouterr()
    assert search("2", spread="4") == 2
    assert "holds a different search (oracle_options differs)" in capsys.readouterr().err


def _oracle_name_tests(tree: ast.AST, names: set) -> list[int]:
    """The lines of a comparison with an oracle's name: x == "evolution", x in ("asha", ...)."""
    def named(node):
        if isinstance(node, ast.Constant):
            return node.value in names if isinstance(node.value, str) else False
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return any(named(e) for e in node.elts)
        return False

    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(named(n) for n in [node.left, *node.comparators]):
            lines.append(node.lineno)
        elif isinstance(node, ast.match_case) and isinstance(node.pattern, ast.MatchValue) and named(node.pattern.value):
            lines.append(node.pattern.lineno)
    return lines


def test_no_module_outside_the_registry_compares_an_oracle_name():
    names = set(ORACLES)
    assert {"evolution", "differentiable", "predictor"} <= names
    assert _oracle_name_tests(ast.parse('if oracle == "differentiable": pass'), names) == [1]  # the scan works
    assert _oracle_name_tests(ast.parse('x = name not in ("asha", "zzz")'), names) == [1]
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.relative_to(PACKAGE).as_posix() == "search/registry.py":
            continue
        found += [f"{path.relative_to(PACKAGE)}:{line}" for line in _oracle_name_tests(ast.parse(path.read_text()), names)]
    assert found == [], f"oracle names compared outside the registry (declare it on the entry): {found}"


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
