"""A new block type is its builder plus one table entry: a throwaway plain-conv block registered
here parses, builds, costs what Keras counts, is a search-space choice and gets a clear supernet
message; unregistered, it is unknown again."""

import numpy as np
import pytest
from keras import layers

import effscale
from effscale.model import block_types
from effscale.model.block_types import BlockType
from effscale.model.cost import cost
from effscale.common.errors import UserError
from effscale.model.genotype import Genotype
from effscale.search.space import SearchSpace
from effscale.search.oneshot.supernet import Supernet, check_space, sample_weights


def plain_conv(x, block, bn):
    """kxk conv (bias-free, strided) + BN + activation, identity shortcut when the plan has one.
    No SE and no expansion: the type is registered with ``expands=False`` and ignores ``se``."""
    y = layers.Conv2D(block.filters_out, block.kernel, strides=block.stride, padding="same", use_bias=False,
                      name=block.name + "_conv")(x)
    y = layers.BatchNormalization(name=block.name + "_bn", **bn)(y)
    y = layers.Activation(block.activation, name=block.name + "_activation")(y)
    return layers.add([y, x], name=block.name + "_add") if block.residual else y


def plain_conv_cost(block, side, out):
    """(trainable, non-trainable, multiply-adds), counted by hand: k*k*cin*cout weights, each
    used out*out times; BN has gamma, beta (trainable) and mean, variance (not)."""
    weights = block.kernel * block.kernel * block.filters_in * block.filters_out
    return weights + 2 * block.filters_out, 2 * block.filters_out, weights * out * out


PLAIN = BlockType("cv", "plainconv", "plain conv", plain_conv, plain_conv_cost, expands=False)
# Only plain conv stages: stem 8 (16 px -> 8 px), block1a 8 -> 16 at stride 2 (4 px), block1b 16 -> 16.
ONLY_PLAIN = "stem8_head32_res16_relu-cv_r2_k3_s2_e1_c16"
MIXED = "stem16_head64_res32_relu-mb_r1_k3_s2_e4_c24_se0.25-cv_r2_k3_s2_e1_c32-ds_r1_k5_s1_e1_c32_se0.25"


@pytest.fixture
def plain():
    block_types.register(PLAIN)
    try:
        yield PLAIN
    finally:
        block_types.unregister(PLAIN.name)


def test_it_parses_encodes_and_round_trips_through_json(plain):
    genotype = Genotype.parse(MIXED)
    assert [s.block for s in genotype.stages] == ["mbconv", "plainconv", "dsconv"]
    assert genotype.encode() == MIXED
    assert Genotype.from_dict(genotype.to_dict()) == genotype
    assert effscale.load_genotype(MIXED) == genotype
    assert block_types.names()[-1] == "plainconv" and "cv" in block_types.tokens()
    with pytest.raises(UserError, match="a plain conv stage has expand ratio 1, got 2"):
        Genotype.parse("stem8_head32_res16_relu-cv_r1_k3_s1_e2_c16")


def test_unknown_tokens_and_names_list_the_registered_ones(plain):
    with pytest.raises(UserError, match=r"token 'zz': expected a block type first \(mb, fmb, ds, cv\)"):
        Genotype.parse("stem8_head32_res16_relu-zz_r1_k3_s1_e1_c16")
    with pytest.raises(UserError, match="block type 'conv9': expected one of mbconv, fused, dsconv, plainconv"):
        block_types.block_type("conv9")
    with pytest.raises(UserError, match="clashes with the registered 'plainconv'"):
        block_types.register(BlockType("cv", "other", "other", plain_conv, plain_conv_cost))
    with pytest.raises(UserError, match="lowercase letters"):
        BlockType("c_v", "x", "x", plain_conv, plain_conv_cost)


def test_analytic_cost_is_what_keras_counts_and_the_hand_count(plain):
    model = effscale.build(ONLY_PLAIN, "w=1,d=1,r=16", classes=10)
    counted = cost(ONLY_PLAIN, "w=1,d=1,r=16", classes=10)
    # Parameters by hand: stem 9*3*8 + BN 4*8; block1a 9*8*16 + 4*16; block1b 9*16*16 + 4*16;
    # head 16*32 + 4*32; dense 32*10 + 10; ImageNet normalization mean 3 + variance 3 + count 1.
    assert model.count_params() == counted.parameters == 216 + 32 + 1152 + 64 + 2304 + 64 + 512 + 128 + 330 + 7
    # Multiply-adds by hand: stem 9*3*8 at 8x8; block1a 9*8*16 at 4x4; block1b 9*16*16 at 4x4;
    # head 16*32 at 4x4; dense 32*10.
    assert counted.multiply_adds == 9 * 3 * 8 * 64 + 9 * 8 * 16 * 16 + 9 * 16 * 16 * 16 + 16 * 32 * 16 + 32 * 10
    names = [layer.name for layer in model.layers]
    assert {"block1a_conv", "block1b_conv", "block1b_add"} <= set(names) and "block1a_add" not in names
    assert model.predict(np.zeros((2, 16, 16, 3), "float32"), verbose=0).shape == (2, 10)

    mixed = effscale.build(MIXED, "w=1,d=1,r=32", classes=5)
    assert mixed.count_params() == cost(MIXED, "w=1,d=1,r=32", classes=5).parameters
    trainable = sum(int(np.prod(w.shape)) for w in mixed.trainable_weights)
    assert trainable == cost(MIXED, "w=1,d=1,r=32", classes=5).trainable_parameters
    plain_layers = [layer for layer in mixed.layers if layer.name.startswith("block2")]
    # block2a 24 -> 32 and block2b 32 -> 32, both 3x3: weights plus BN's four per channel.
    assert sum(layer.count_params() for layer in plain_layers) == 9 * 24 * 32 + 4 * 32 + 9 * 32 * 32 + 4 * 32


def test_the_search_space_offers_it_as_a_block_choice(plain):
    space = SearchSpace("tiny", open=("block", "expand"), stages=(2,))
    assert space.choices("stage2/block") == ("mbconv", "fused", "dsconv", "plainconv")
    # expand is a choice only for the types with an expansion conv
    assert space.condition("stage2/expand") == ("stage2/block", ("mbconv", "fused"))
    values = dict(space.default_values(), **{"stage2/block": "plainconv"})
    values.pop("stage2/expand")
    genotype = space.to_genotype(values)
    assert genotype.stages[1].block == "plainconv" and genotype.stages[1].expand == 1
    assert space.to_values(genotype) == values
    assert effscale.build(genotype, "w=0.25,d=0.5,r=16", classes=3).output_shape == (None, 3)
    only = SearchSpace("tiny", open=("block",), stages=(2,), options={"block": ("plainconv",)})
    assert only.choices("stage2/block") == ("mbconv", "plainconv")   # the reference's own type stays
    assert only.size == 2


def test_the_supernet_says_it_cannot_mix_it_and_still_builds_without_it(plain):
    space = SearchSpace(MIXED, open=("kernel",), stages=(3,))
    message = "differentiable search supports MBConv and depthwise-separable stages; stage 2 is plain conv"
    with pytest.raises(UserError, match=message):
        check_space(space)
    with pytest.raises(UserError, match=message):
        Supernet(space, "w=1,d=1,r=32", classes=4)
    # Registered but not in the reference: the supernet is unaffected.
    space = SearchSpace("tiny", open=("kernel", "expand"), stages=(3,))
    net = Supernet(space, "w=0.25,d=1,r=8", classes=4)
    import tensorflow as tf

    weights = sample_weights({n: tf.zeros(len(space.choices(n))) for n in space.names}, None)
    assert net(tf.zeros((1, 8, 8, 3)), weights).shape == (1, 4)


def test_unregistered_it_is_unknown_again():
    block_types.register(PLAIN)
    block_types.unregister("plainconv")
    assert block_types.names() == ("mbconv", "fused", "dsconv")
    with pytest.raises(UserError, match=r"expected a block type first \(mb, fmb, ds\)"):
        Genotype.parse(ONLY_PLAIN)
    assert SearchSpace("tiny", open=("block",), stages=(2,)).choices("stage2/block") == ("mbconv", "fused", "dsconv")
    with pytest.raises(UserError, match="block choice 'plainconv'"):
        SearchSpace("tiny", options={"block": ("plainconv",)})
    with pytest.raises(UserError, match="built in"):
        block_types.unregister("fused")
