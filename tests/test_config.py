"""Config and plain-data round trips (no training here)."""

import pytest

from effscale.family.config import FamilyConfig, set_dotted
from effscale.common.errors import UserError
from effscale.model.scaling import Variant
from effscale.model.variants import resolve_family
from effscale.model.zoo import get_genotype


def test_family_config_round_trips_through_plain_data():
    config = FamilyConfig.from_dict({"dataset": "digits", "search": {"trials": 3, "target": "2e6"},
                                     "scaling": {"family": ["b0", "phi=1"]}, "training": {"epochs": 2}})
    assert FamilyConfig.from_dict(config.to_dict()) == config
    assert config.search.target == 2e6  # YAML reads 2e6 without a dot as text


def test_variants_round_trip_through_plain_data():
    family = resolve_family("b0;b8;l2;phi=1.5;macs=1e9;w=0.25,d=0.34,r=32", get_genotype("efficientnet-b0"))
    for variant in family + [Variant("x", 0.25, 0.34, 32, 0.1)]:
        assert Variant.from_dict(variant.to_dict()) == variant


def test_dotted_overrides_create_sections_and_refuse_to_descend_into_values():
    data = {"dataset": "digits"}
    set_dotted(data, "search.trials", 5)
    assert data == {"dataset": "digits", "search": {"trials": 5}}
    with pytest.raises(UserError, match="not a section"):
        set_dotted(data, "dataset.name", "x")


@pytest.mark.parametrize("data,named", [
    ({"dataset": "digits", "search": []}, "'search'"),
    ({"dataset": "digits", "search": {"enabled": "yes"}}, "'search.enabled'"),
    ({"dataset": "digits", "search": {"trials": 2.5}}, "'search.trials'"),
    ({"dataset": "digits", "search": {"target": "lots"}}, "'search.target'"),
    ({"dataset": "digits", "search": {"cost": "watts"}}, "'search.cost'"),
    ({"dataset": "digits", "coefficients": {"alpha": 0.5}}, "'coefficients.alpha'"),
    ({"dataset": "digits", "training": {"strategy": "cluster"}}, "'training.strategy'"),
    ({"dataset": "digits", "scaling": {"base": "w=0"}}, "'scaling.base'"),
    ({"dataset": "digits", "validation_fraction": 1.5}, "'validation_fraction'"),
    ({"dataset": "idx:/nonexistent-effscale-folder"}, "config key 'dataset': no IDX dataset at"),
    ({"dataset": "cifar11"}, "config key 'dataset': unknown dataset 'cifar11'"),
    ({"dataset": 7}, "'dataset'"),
])
def test_every_bad_key_is_named(data, named):
    with pytest.raises(UserError) as caught:
        FamilyConfig.from_dict(data)
    assert named in str(caught.value)


def test_reference_points_are_checked():
    config = FamilyConfig.from_dict({"dataset": "digits",
                                     "reference_points": {"keras B0": {"multiply_adds": 3.9e8, "top1": 0.771}}})
    assert config.reference_points["keras B0"]["top1"] == 0.771
    with pytest.raises(UserError, match="reference_points.bad"):
        FamilyConfig.from_dict({"dataset": "digits", "reference_points": {"bad": {"top1": 0.5}}})


# -- the search section is the search's SearchConfig, key for key ---------------------------------

def test_the_search_section_sets_every_search_option_by_its_own_name():
    from effscale.family.config import FamilySearchConfig
    from effscale.search import SearchConfig

    # ``enabled`` and ``workers`` say whether and how the search runs, not what it searches.
    assert set(SearchConfig.keys()) - {"baseline", "dataset"} | {"enabled", "workers"} == set(FamilySearchConfig.keys())
    section = {"oracle": "evolution", "cost": "params", "target": "50k", "constraint": "hard", "trials": 3,
               "epochs": 2, "seed": 4, "resolution": 16, "width": 0.5, "depth": 0.75, "alpha": -0.1, "beta": -0.9,
               "max_macs": "4e6", "max_params": 9e4, "max_latency": 0.01, "open_choices": ["kernel", "se"],
               "options": {"kernel": [3, 5]}, "stages": [2, 3], "oracle_options": {"population_size": 3},
               "latency": {"runs": 3, "warmup": 1, "threads": 1}, "prescreen": "params:4", "seeds": 2, "top_k": 2,
               "reevaluate_seeds": 3, "train_fraction": 0.5}
    config = FamilyConfig.from_dict({"dataset": "digits", "baseline": "tiny", "search": section})
    search = config.search.search_config()
    assert search == SearchConfig(
        baseline="tiny", dataset="digits", oracle="evolution", cost="params", target=5e4, constraint="hard", trials=3,
        epochs=2, seed=4, resolution=16, width=0.5, depth=0.75, alpha=-0.1, beta=-0.9, max_macs=4e6,
        max_params=9e4, max_latency=0.01, open_choices=("kernel", "se"), options={"kernel": (3, 5)},
        stages=(2, 3), oracle_options={"population_size": 3}, latency={"runs": 3, "warmup": 1, "threads": 1},
        prescreen="params:4", seeds=2, top_k=2, reevaluate_seeds=3, train_fraction=0.5)
    assert FamilyConfig.from_dict(config.to_dict()) == config
    assert "baseline" not in config.to_dict()["search"] and config.to_dict()["search"]["stages"] == [2, 3]
    # The family's own defaults; the spellings older family configs saved (resolution 0, proxy "")
    # are no longer read as "none": they are refused like any bad value.
    default = FamilyConfig.from_dict({"dataset": "digits", "search": {}}).search
    assert (default.trials, default.epochs, default.target, default.resolution, default.proxy) == (8, 2, 2e6, None, None)
    with pytest.raises(UserError, match="config key 'search.resolution': resolution must be in 8..1024"):
        FamilyConfig.from_dict({"dataset": "digits", "search": {"resolution": 0}})
    with pytest.raises(UserError, match="config key 'search.proxy': proxy file ''"):
        FamilyConfig.from_dict({"dataset": "digits", "search": {"proxy": ""}})


@pytest.mark.parametrize("search,named", [
    ({"max_macs": -1}, "config key 'search.max_macs': max_macs must be positive"),
    ({"max_params": "many"}, "config key 'search.max_params': max_params must be a number"),
    ({"prescreen": "flops:3"}, "config key 'search.prescreen': prescreen 'flops:3': unknown proxy"),
    ({"oracle": "reinforce", "prescreen": "params:3"}, "config key 'search.prescreen': oracle 'reinforce' does not"),
    ({"open_choices": ["wings"]}, "config key 'search.open_choices': unknown choice 'wings'"),
    ({"stages": [9]}, "config key 'search.stages': stage 9"),
    ({"options": {"kernel": 3}}, "config key 'search.options'"),
    ({"seeds": 0}, "config key 'search.seeds': seeds must be a positive integer"),
    ({"reevaluate_seeds": 1}, "config key 'search.reevaluate_seeds'"),
    ({"train_fraction": 2}, "config key 'search.train_fraction': train_fraction must be in (0, 1]"),
    ({"depth": 0}, "config key 'search.depth'"),
    ({"latency": "fast"}, "config key 'search.latency': latency must be a mapping"),
    ({"cost": "latency", "target": None}, "config key 'search.target': cost 'latency' needs an explicit target"),
    ({"oracle": "differentiable", "cost": "latency"}, "config key 'search.oracle': differentiable"),  # filters are searched now; latency is not
    ({"baseline": "tiny"}, "config key 'search.baseline' is set by the top-level key 'baseline'"),
    ({"proxy": "/nonexistent/proxy.json"}, "config key 'search.proxy': proxy file"),
    ({"max_mac": 5}, "config key 'search.max_mac' is unknown: expected one of alpha, beta,"),
    ({"oracle": "reinforce", "oracle_options": {"population_size": 5}},
     "config key 'search.oracle_options': oracle 'reinforce' has no option 'population_size': its options are "
     "learning_rate,"),
    ({"oracle": "random", "oracle_options": {"seed": 5}}, "config key 'search.oracle_options': oracle 'random' has no "
                                                          "option 'seed': it takes none"),
])
def test_a_bad_search_value_is_one_error_naming_its_key(search, named):
    with pytest.raises(UserError) as caught:
        FamilyConfig.from_dict({"dataset": "digits", "search": search})
    assert str(caught.value).startswith(named) and "\n" not in str(caught.value), str(caught.value)


def test_a_saved_search_record_loads_back_as_the_config_it_came_from():
    """search.json's ``config`` (format_version 1) reads back as the SearchConfig that wrote it;
    a record written before formats were versioned is refused where the file is read
    (tests/test_migrations.py), so no reader keeps the old key names."""
    from effscale.search import SearchConfig

    config = SearchConfig("tiny", oracle="evolution", cost="macs", target=1e5, trials=2, seed=5, stages=(2,),
                          oracle_options={"population_size": 3, "sample_size": 2}, seeds=2)
    saved = config.resolve(10).record.to_dict()
    again = SearchConfig.from_record(saved)
    assert again.oracle_options == {"population_size": 3, "sample_size": 2} and again.seeds == 2
    assert again.resolve(10).record.mismatch(saved) is None
    assert again.resolve(10).record.mismatch(dict(saved, seed=6)) == "seed"
    assert again.resolve(10).record.mismatch(dict(saved, trials=9)) is None  # a search may grow
    with pytest.raises(UserError, match="oracle 'reinforce' has no option 'population_size'"):
        SearchConfig(config.baseline, oracle="reinforce", oracle_options={"population_size": 3})


def test_training_augment_takes_a_mode_name_or_a_boolean():
    from effscale.common.errors import UserError
    from effscale.family.config import FamilyConfig

    for value in (True, False, "resized-crop", "padded-crop"):
        assert FamilyConfig.from_dict({"dataset": "digits", "training": {"augment": value}}).training.augment == value
    with pytest.raises(UserError, match="training.augment"):
        FamilyConfig.from_dict({"dataset": "digits", "training": {"augment": "cutout"}})
