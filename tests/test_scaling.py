"""Compound scaling as pure functions: rounding rules, the four variant spellings, families."""

import math

import pytest

from effscale.model import cost
from effscale.common.errors import UserError
from effscale.model.scaling import PUBLISHED, phi_variant, round_filters, round_repeats
from effscale.model.variants import resolve_family, resolve_variant
from effscale.model.zoo import get_genotype

B0 = get_genotype("efficientnet-b0")


@pytest.mark.parametrize("filters,width,expected", [
    (32, 1.0, 32), (32, 1.1, 32), (1280, 1.1, 1408), (1280, 1.2, 1536), (1280, 1.4, 1792),
    (40, 1.1, 48),    # 44 rounds half up to 48
    (24, 1.4, 32),    # 33.6 -> 32
    (16, 0.25, 8),    # never below the divisor
    (100, 0.47, 48),  # 47 -> 48
    (36, 1.0, 40),    # 36 -> 40 (round half up)
    (192, 0.55, 104), # 105.6 -> 104
    (8, 1.0, 8),
])
def test_round_filters_hand_computed(filters, width, expected):
    assert round_filters(filters, width) == expected


def test_round_filters_never_rounds_down_more_than_ten_percent():
    for filters in range(1, 400):
        for width in (0.1, 0.25, 0.33, 0.5, 0.77, 1.0, 1.13, 1.7, 2.5):
            rounded = round_filters(filters, width)
            assert rounded % 8 == 0 and rounded >= 8
            assert rounded >= 0.9 * filters * width


@pytest.mark.parametrize("repeats,depth,expected", [(1, 1.0, 1), (1, 1.1, 2), (2, 1.2, 3), (4, 3.1, 13),
                                                    (3, 1.4, 5), (4, 0.34, 2), (1, 0.1, 1)])
def test_round_repeats_rounds_up(repeats, depth, expected):
    assert round_repeats(repeats, depth) == expected


def test_published_table_spellings():
    for name, (width, depth, resolution, dropout) in PUBLISHED.items():
        for spelling in (name, name.upper(), f" {name} "):
            variant = resolve_variant(spelling, B0)
            assert (variant.name, variant.width, variant.depth, variant.resolution, variant.dropout) == (
                name, width, depth, resolution, dropout)


def test_paper_formula():
    one = resolve_variant("phi=1", B0)
    assert (one.depth, one.width) == (1.2, 1.1)
    assert one.resolution == 256  # 224 * 1.15 = 257.6, to a multiple of 8
    custom = resolve_variant("phi=2,alpha=1.3,beta=1.05,gamma=1.1", B0)
    assert custom.depth == pytest.approx(1.69) and custom.width == pytest.approx(1.1025)
    assert custom.resolution == 272  # 224 * 1.21 = 271.04
    assert resolve_variant("phi=0", B0).resolution == 224
    # FLOPs grow about 2^phi under alpha * beta^2 * gamma^2 ~= 2.
    ratio = cost.multiply_adds(B0, phi_variant(3, B0)) / cost.multiply_adds(B0, phi_variant(0, B0))
    assert 5 < ratio < 11


@pytest.mark.parametrize("target", [1e8, 2e8, 1e9, 2e9, 1e10])
def test_cost_target_picks_the_closest_phi(target):
    variant = resolve_variant(f"macs={target:g}", B0)
    reached = cost.multiply_adds(B0, variant)
    assert abs(reached - target) / target < 0.1
    # No phi on a fine grid comes closer than the solver's answer (up to the grid's step).
    grid = [cost.multiply_adds(B0, phi_variant(p / 50, B0)) for p in range(-200, 600)]
    best = min(abs(m - target) for m in grid)
    assert abs(reached - target) <= best * 1.0001 + 1


def test_parameter_target():
    variant = resolve_variant("params=2e7", B0)
    assert abs(cost.parameter_count(B0, variant) - 2e7) / 2e7 < 0.05


def test_explicit_coefficients():
    variant = resolve_variant("w=0.25,d=0.34,r=32", B0)
    assert (variant.width, variant.depth, variant.resolution, variant.dropout) == (0.25, 0.34, 32, 0.2)
    assert resolve_variant("r=16,d=1,w=0.5,dropout=0", B0).dropout == 0


def test_families():
    assert [v.name for v in resolve_family("b0-b7", B0)] == [f"b{i}" for i in range(8)]
    assert [v.name for v in resolve_family("b0,b2,b4", B0)] == ["b0", "b2", "b4"]
    assert [v.name for v in resolve_family("phi=0..3", B0)] == ["phi0", "phi1", "phi2", "phi3"]
    half = resolve_family("phi=0..1:0.5,alpha=1.3", B0)
    assert [v.depth for v in half] == [1.0, pytest.approx(1.3 ** 0.5), 1.3]
    mixed = resolve_family("b1;phi=1.5;w=0.5,d=0.5,r=64;macs=1e9", B0)
    assert len(mixed) == 4
    assert [v.name for v in resolve_family(["b0", "b3"], B0)] == ["b0", "b3"]


@pytest.mark.parametrize("spec,named", [
    ("b9", "unknown variant"), ("", "empty"), ("phi=abc", "phi"), ("phi=-20", "phi"), ("phi=1,alpha=-1.2", "alpha"),
    ("phi=1,alpha=0.5", "alpha"), ("phi=1,gamma=50", "gamma"), ("phi=nan", "phi"), ("macs=-5", "positive"),
    ("macs=1e30", "out of reach"), ("macs=1", "out of reach"), ("w=-1,d=1,r=32", "width"),
    ("w=100,d=1,r=32", "width"), ("w=1,d=1", "r="), ("w=1,d=1,r=3", "resolution"), ("w=1,d=1,r=32.5", "integer"),
    ("w=1,d=1,r=32,dropout=1.5", "dropout"), ("w=1,d=1,r=32,x=1", "'x=1'"), ("phi=1,phi=2", "twice"),
    ("params=inf", "finite"),
])
def test_bad_variants_raise_user_errors(spec, named):
    with pytest.raises(UserError, match=named):
        resolve_variant(spec, B0)


@pytest.mark.parametrize("spec", ["b7-b0", "b0-b9", "phi=3..1", "phi=0..100:0.1", "b0,b0"])
def test_bad_families_raise_user_errors(spec):
    with pytest.raises(UserError):
        resolve_family(spec, B0)


def test_dropout_of_formula_variants_tracks_the_table():
    assert [phi_variant(p, B0).dropout for p in (0, 2, 4, 6, 9)] == [0.2, 0.3, 0.4, 0.5, 0.5]
    assert not math.isnan(phi_variant(-1, B0).dropout)


def test_published_names_keep_resolution_ratios_for_other_design_resolutions():
    tiny = get_genotype("tiny")  # designed at 32 px
    assert tiny.resolution == 32
    assert [resolve_variant(n, tiny).resolution for n in ("b0", "b3", "b7")] == [32, 44, 84]  # 32*300/224=42.9
    assert resolve_variant("b3", tiny).width == 1.2


def test_explicit_variants_are_what_their_spelling_parses_to_and_keep_its_text_key():
    from effscale.model.scaling import Variant, parse_variant, variant_spec
    from effscale.search.oneshot.differentiable import _config
    from effscale.search.objectives import Reward, design_variant
    from effscale.search.proxy import ProxySettings
    from effscale.search.space import SearchSpace

    for width, depth, resolution in [(0.25, 1, 8), (1, 1, 224), (0.5, 0.75, 32), (1.1, 1.2, 240), (2, 3.1, 600)]:
        spelled = f"w={width:g},d={depth:g},r={resolution}"  # how the search spelled its variants before
        variant = Variant.explicit(width, depth, resolution)
        assert variant == parse_variant(spelled, B0) and variant.spec == variant_spec(variant) == spelled
        assert isinstance(variant.width, float) and variant.to_dict() == parse_variant(spelled, B0).to_dict()
    thinner = Variant.explicit(0.5, 0.5, 32, dropout=0.3)
    assert parse_variant(thinner.spec, B0) == thinner and thinner.spec == "w=0.5,d=0.5,r=32,dropout=0.3"
    assert variant_spec("b0") == "b0" and design_variant(B0).spec == "w=1,d=1,r=224"
    # a differentiable search's saved config (what a resume compares) is the same for both spellings
    space, reward = SearchSpace("tiny", open=("kernel",)), Reward(cost="macs", target=1e6)
    assert _config(space, Variant.explicit(0.25, 1, 8), reward, ProxySettings(), 0, {}) == \
        _config(space, "w=0.25,d=1,r=8", reward, ProxySettings(), 0, {})
    assert _config(space, Variant.explicit(0.25, 1, 8), reward, ProxySettings(), 0, {})["variant"] == "w=0.25,d=1,r=8"
