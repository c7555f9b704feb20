"""Config and plain-data round trips (no training here)."""

import pytest

from effscale.config import FamilyConfig, set_dotted
from effscale.errors import UserError
from effscale.scaling import Variant
from effscale.variants import resolve_family
from effscale.zoo import get_genotype


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
