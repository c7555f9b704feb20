"""Zero-cost proxies on real digits images: finite for every block type with and without SE and
the identity skip, deterministic for a fixed seed and batch, sensitive to weights and architecture."""

import math

import pytest

from effscale.model.cost import cost
from effscale.data.pipeline import DataSpec, load_data
from effscale.common.errors import UserError
from effscale.search.zero_cost import PROXIES, first_batch, parse_prescreen, score, score_many

# Between them every block type appears with and without SE; stages of two blocks have the
# identity skip (G1's mb and fmb) or not (G2's noskip, and G2's single-block ds).
G1 = "stem8_head32_res16_swish-mb_r2_k3_s1_e4_c8_se0.25-fmb_r2_k3_s2_e2_c16-ds_r2_k5_s2_e1_c24_se0.25"
G2 = "stem8_head32_res16_relu-mb_r2_k5_s2_e3_c16_noskip-fmb_r2_k3_s1_e1_c16_se0.25-ds_r1_k3_s2_e1_c24"
VARIANT = "w=0.5,d=1,r=8"
LEARNED = ("synflow", "grad_norm", "naswot")


@pytest.fixture(scope="module")
def batch():
    return first_batch(load_data(DataSpec("digits", resolution=8), batch_size=16))


@pytest.fixture(scope="module")
def scores(batch):
    return {(g, p): score(g, p, batch, VARIANT, classes=10, seed=0) for g in (G1, G2) for p in PROXIES}


def test_every_proxy_is_finite_for_every_block_type_with_and_without_se_and_skip(scores):
    for (genotype, proxy), value in scores.items():
        assert isinstance(value, float) and math.isfinite(value), (genotype, proxy, value)
    for genotype in (G1, G2):
        counted = cost(genotype, VARIANT, classes=10)
        assert scores[genotype, "params"] == counted.parameters
        assert scores[genotype, "macs"] == counted.multiply_adds


def test_scores_are_deterministic_and_depend_on_the_weights_and_the_architecture(scores, batch):
    again = score_many([G1], "naswot", batch, VARIANT, 10, seed=0) + \
        [score(G1, p, batch, VARIANT, 10, seed=0) for p in ("synflow", "grad_norm")]
    assert again == [scores[G1, "naswot"], scores[G1, "synflow"], scores[G1, "grad_norm"]]
    for proxy in ("synflow", "grad_norm"):  # other initial weights
        assert score(G1, proxy, batch, VARIANT, 10, seed=1) != scores[G1, proxy], proxy
    for proxy in PROXIES:
        assert scores[G1, proxy] != scores[G2, proxy], proxy


def test_data_proxies_look_at_the_batch(scores, batch):
    images, labels = batch
    assert score(G2, "grad_norm", (images, (labels + 1) % 10), VARIANT, 10) != scores[G2, "grad_norm"]
    assert score(G2, "naswot", (images[:, :, ::-1], labels), VARIANT, 10) != pytest.approx(scores[G2, "naswot"])


def test_bad_input_is_a_user_error(batch):
    with pytest.raises(UserError, match="unknown proxy"):
        score(G1, "zen", batch, VARIANT, 10)
    with pytest.raises(UserError, match="needs batch"):
        score(G1, "naswot", None, VARIANT, 10)
    with pytest.raises(UserError, match="8 px model"):
        score(G1, "grad_norm", (batch[0][:, :4, :4], batch[1]), VARIANT, 10)
    for text, message in (("synflow", "expected PROXY:N"), ("synflow:x", "expected PROXY:N"),
                          ("flops:3", "unknown proxy 'flops'"), ("naswot:0", "N must be in 1..10000")):
        with pytest.raises(UserError, match=message):
            parse_prescreen(text)
    assert parse_prescreen("GRAD_NORM: 7") == ("grad_norm", 7)
