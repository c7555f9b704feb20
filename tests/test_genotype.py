"""Genotype string and JSON forms: round trips, canonical keys, strict parsing."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from effscale.common.errors import UserError
from effscale.model.genotype import ACTIVATIONS, BLOCK_TYPES, Genotype, Stage
from effscale.model.zoo import load_genotype
from effscale.model.zoo import REGISTRY

B0 = REGISTRY["efficientnet-b0"].genotype


@st.composite
def stages(draw):
    block = draw(st.sampled_from(BLOCK_TYPES))
    expand = 1 if block == "dsconv" else draw(st.sampled_from([1, 2, 3, 4, 4.5, 6, 8]))
    return Stage(
        block=block,
        repeats=draw(st.integers(1, 6)),
        kernel=draw(st.sampled_from([1, 3, 5, 7])),
        stride=draw(st.sampled_from([1, 2])),
        expand=expand,
        filters=draw(st.integers(1, 2048)),
        se=draw(st.sampled_from([0, 0.0, 0.125, 0.25, 0.5, 1])),
        skip=draw(st.booleans()),
        activation=draw(st.sampled_from([None, *ACTIVATIONS])),
    )


@st.composite
def genotypes(draw):
    return Genotype(
        stages=tuple(draw(st.lists(stages(), min_size=1, max_size=9))),
        stem=draw(st.integers(1, 512)),
        head=draw(st.integers(1, 4096)),
        resolution=draw(st.integers(8, 1024)),
        activation=draw(st.sampled_from(list(ACTIVATIONS))),
    )


@settings(max_examples=300, deadline=None)
@given(genotypes())
def test_string_form_round_trips(genotype):
    text = genotype.encode()
    assert Genotype.parse(text) == genotype
    assert Genotype.parse(text).encode() == text


@settings(max_examples=200, deadline=None)
@given(genotypes())
def test_json_form_round_trips(genotype):
    assert Genotype.from_json(genotype.to_json()) == genotype
    assert Genotype.from_dict(json.loads(json.dumps(genotype.to_dict()))) == genotype


@settings(max_examples=100, deadline=None)
@given(genotypes(), genotypes())
def test_key_is_equal_exactly_for_equal_genotypes(a, b):
    assert (a.key == b.key) == (a == b)


def test_key_ignores_spelling_but_not_content():
    respelled = B0.encode().replace("mb_r2_k3_s2_e6_c24_se0.25", "mb_c24_se0.25_e6.0_s2_k3_r2")
    assert respelled != B0.encode()
    assert Genotype.parse(respelled).key == B0.key
    assert B0.replace(stem=40).key != B0.key


def test_registered_baselines_match_the_papers():
    b0 = REGISTRY["efficientnet-b0"].genotype
    assert [(s.kernel, s.repeats, s.filters, s.expand, s.stride) for s in b0.stages] == [
        (3, 1, 16, 1, 1), (3, 2, 24, 6, 2), (5, 2, 40, 6, 2), (3, 3, 80, 6, 2),
        (5, 3, 112, 6, 1), (5, 4, 192, 6, 2), (3, 1, 320, 6, 1)]
    assert all(s.se == 0.25 and s.skip for s in b0.stages)
    a1 = REGISTRY["mnasnet-a1"].genotype
    assert [s.se for s in a1.stages] == [0, 0, 0.25, 0, 0.25, 0.25, 0]
    assert not a1.stages[0].skip and a1.activation == "relu"


def test_load_genotype_accepts_name_string_and_files(tmp_path):
    assert load_genotype("efficientnet-b0") == B0
    assert load_genotype(B0.encode()) == B0
    json_file = tmp_path / "g.json"
    json_file.write_text(B0.to_json())
    assert load_genotype(str(json_file)) == B0
    text_file = tmp_path / "g.txt"
    text_file.write_text(B0.encode() + "\n")
    assert load_genotype(str(text_file)) == B0


def test_load_genotype_takes_a_string_longer_than_a_file_name():
    # Twelve stages make over 300 characters, more than a file name may have (255 on Linux): the file
    # check must not raise OSError "File name too long" before the string is parsed.
    text = "stem16_head64_res32_relu-" + "-".join(["mb_r1_k3_s1_e4_c24_se0.25"] * 12)
    assert len(text) > 255
    genotype = load_genotype(text)
    assert len(genotype.stages) == 12 and genotype.encode() == text


GOOD_STAGE = "mb_r1_k3_s1_e1_c16"
HEADER = "stem32_head1280_res224_swish"
MALFORMED = [
    ("", "empty"),
    ("   ", "empty"),
    (HEADER, "at least one stage"),
    ("efficientnet-b9", "efficientnet-b9"),
    (f"{HEADER}-xx_r1_k3_s1_e1_c16", "'xx'"),
    (f"{HEADER}-mb_r1_k4_s1_e1_c16", "kernel"),
    (f"{HEADER}-mb_r1_k3_s3_e1_c16", "stride"),
    (f"{HEADER}-mb_r0_k3_s1_e1_c16", "repeats"),
    (f"{HEADER}-mb_r1_k3_s1_e0.5_c16", "expand"),
    (f"{HEADER}-mb_r1_k3_s1_e1_c0", "filters"),
    (f"{HEADER}-mb_r1_k3_s1_e1_c16_se1.5", "SE ratio"),
    (f"{HEADER}-mb_r1_k3_s1_e1_c16_sf0.25", "'sf0.25'"),
    (f"{HEADER}-mb_r1_k3_s1_e1", "output filters"),
    (f"{HEADER}-mb_k3_s1_e1_c16", "repeats"),
    (f"{HEADER}-mb_r1_k3_k5_s1_e1_c16", "'k5'"),
    (f"{HEADER}-mb_r1_kx_s1_e1_c16", "'kx'"),
    (f"{HEADER}-mb_r1.5_k3_s1_e1_c16", "'r1.5'"),
    (f"{HEADER}-mb_r1_k3_s1_e1_c16_tanh", "'tanh'"),
    (f"{HEADER}-ds_r1_k3_s1_e6_c16", "depthwise-separable"),
    (f"{HEADER}--{GOOD_STAGE}", "empty"),
    (f"{HEADER}-{GOOD_STAGE}-", "empty"),
    (f"stem32_head1280_swish-{GOOD_STAGE}", "resolution"),
    (f"stem32_head1280_res224_swish_relu-{GOOD_STAGE}", "activation given twice"),
    (f"stem32_head1280_res224_mish-{GOOD_STAGE}", "'mish'"),
    (f"stem32_head1280_res4_swish-{GOOD_STAGE}", "resolution"),
    (f"stem-3_head1280_res224_swish-{GOOD_STAGE}", "'stem'"),
    (f"{HEADER}-mb_r1_k3_s1_e1_c16_noskip_noskip", "given twice"),
    (f"{HEADER}-mb_r1_k3_s1_e1_c16_se", "'se'"),
]


@pytest.mark.parametrize("text,named", MALFORMED)
def test_malformed_strings_raise_value_errors_naming_the_problem(text, named):
    with pytest.raises(ValueError) as caught:
        load_genotype(text)
    assert isinstance(caught.value, UserError)
    assert named in str(caught.value), str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("mutate,named", [
    (lambda d: d.update(colour="red"), "colour"),
    (lambda d: d["stages"][0].update(kernal=3), "kernal"),
    (lambda d: d["stages"][0].pop("filters"), "filters"),
    (lambda d: d["stages"][0].update(kernel="3"), "kernel"),
    (lambda d: d["stages"][0].update(skip="yes"), "skip"),
    (lambda d: d.update(stages="mb_r1"), "stages"),
    (lambda d: d.update(stem=True), "stem"),
])
def test_malformed_json_raises_naming_the_key(mutate, named):
    data = B0.to_dict()
    mutate(data)
    with pytest.raises(UserError, match=named):
        Genotype.from_dict(data)


def test_json_that_does_not_parse_is_a_user_error():
    with pytest.raises(UserError, match="does not parse"):
        Genotype.from_json("{not json")


def test_genotypes_are_frozen():
    with pytest.raises(AttributeError):
        B0.stem = 16
