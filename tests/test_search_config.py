"""run_search takes a SearchConfig, and the family config's search section maps onto it one to one."""

import inspect

import pytest

from effscale.config import FamilyConfig
from effscale.config import SearchConfig as FamilySearchSection
from effscale.errors import UserError
from effscale.family import search_config
from effscale.search import SearchConfig, run_search


def test_every_search_option_is_a_key_of_the_family_search_section():
    options = set(inspect.signature(SearchConfig.create).parameters) - {"baseline", "dataset"}
    keys = {f for f in FamilySearchSection.__dataclass_fields__} - {"enabled"}
    assert options == keys


def test_family_search_options_reach_the_search_config():
    family = FamilyConfig.from_dict({"dataset": "digits", "baseline": "tiny", "search": {
        "oracle": "random", "cost": "params", "target": 5e4, "trials": 3, "epochs": 1, "resolution": 16,
        "depth": 0.5, "max_macs": 2e6, "open_choices": "kernel,expand", "options": {"kernel": [3, 5]},
        "stages": "1,2", "prescreen": "params:4", "alpha": -0.1, "oracle_options": {}, "seed": 3}})
    config = search_config(family)
    direct = SearchConfig.create("tiny", oracle="random", cost="params", target=5e4, trials=3, epochs=1,
                                 resolution=16, depth=0.5, max_macs=2e6, open_choices=["kernel", "expand"],
                                 options={"kernel": [3, 5]}, stages=[1, 2], prescreen="params:4", alpha=-0.1,
                                 seed=3)
    assert config == direct
    assert config.limits["max_macs"] == 2e6 and config.depth == 0.5 and config.prescreen == "params:4"
    assert config.reward["alpha"] == -0.1


def test_a_bad_search_option_in_a_family_config_is_refused_before_anything_is_written(tmp_path):
    from effscale.family import run_family

    with pytest.raises(UserError, match="prescreen"):
        run_family({"dataset": "digits", "search": {"oracle": "reinforce", "prescreen": "params:4"}},
                   str(tmp_path / "run"), verbose=0)
    assert not (tmp_path / "run").exists()


def test_run_search_takes_a_config_or_options_but_not_both(tmp_path):
    config = SearchConfig.create("tiny", oracle="random", trials=1)
    with pytest.raises(UserError, match="not both"):
        run_search(config, str(tmp_path / "p"), oracle="evolution")
    assert not (tmp_path / "p").exists()
