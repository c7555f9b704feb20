"""MBConv, Fused-MBConv and depthwise-separable blocks, built from Keras layers only.

Layer names follow keras.applications EfficientNet (``block2a_expand_conv``,
``block2a_dwconv``, ``block2a_se_reduce``, ``block2a_project_bn``, ...), so weights move
between effscale models and keras.applications models by name. A block's convention
(:mod:`effscale.model.conventions`) picks V1's or V2's padding and depthwise layer name. The table in
:mod:`effscale.model.block_types` names each block type's builder here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keras import layers

from effscale.model.conventions import CONVENTIONS

if TYPE_CHECKING:  # effscale.model.block_types builds with these functions, and plan reads block_types
    from effscale.model.plan import BlockPlan

# keras.applications EfficientNet initializers (fan-out variance scaling).
CONV_INIT = {"class_name": "VarianceScaling",
             "config": {"scale": 2.0, "mode": "fan_out", "distribution": "truncated_normal"}}
DENSE_INIT = {"class_name": "VarianceScaling",
              "config": {"scale": 1.0 / 3.0, "mode": "fan_out", "distribution": "uniform"}}


def correct_pad(size: int | None, kernel: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Zero padding before a stride-2 'valid' convolution, as keras.applications pads.

    >>> correct_pad(224, 3), correct_pad(225, 5)
    (((0, 1), (0, 1)), ((2, 2), (2, 2)))
    """
    adjust = 1 if size is None else 1 - size % 2
    half = kernel // 2
    return ((half - adjust, half), (half - adjust, half))


def strided_conv_padding(x, kernel: int, stride: int, name: str, explicit: bool = True):
    """Pad explicitly for stride 2 (symmetric like the TF reference) when ``explicit``;
    otherwise, and for stride 1, Keras 'same'."""
    if stride == 1 or not explicit:
        return x, "same"
    padded = layers.ZeroPadding2D(padding=correct_pad(x.shape[1], kernel), name=name)(x)
    return padded, "valid"


def batch_norm(name: str, bn: dict):
    """A batch-norm layer with keyword arguments ``bn``; ``"fused": True`` among them picks
    :class:`~effscale.model.fused_norm.FusedBatchNormalization` (the same variables)."""
    bn = dict(bn)
    if bn.pop("fused", False):
        from effscale.model.fused_norm import FusedBatchNormalization

        return FusedBatchNormalization(axis=-1, name=name, **bn)
    return layers.BatchNormalization(axis=-1, name=name, **bn)


def squeeze_excite(x, block: BlockPlan, channels: int):
    name = block.name + "_"
    se = layers.GlobalAveragePooling2D(name=name + "se_squeeze")(x)
    se = layers.Reshape((1, 1, channels), name=name + "se_reshape")(se)
    se = layers.Conv2D(block.se_filters, 1, padding="same", activation=block.activation,
                       kernel_initializer=CONV_INIT, name=name + "se_reduce")(se)
    se = layers.Conv2D(channels, 1, padding="same", activation="sigmoid",
                       kernel_initializer=CONV_INIT, name=name + "se_expand")(se)
    return layers.multiply([x, se], name=name + "se_excite")


def residual(x, inputs, block: BlockPlan):
    if not block.residual:
        return x
    if block.drop_rate > 0:
        x = layers.Dropout(block.drop_rate, noise_shape=(None, 1, 1, 1), name=block.name + "_drop")(x)
    return layers.add([x, inputs], name=block.name + "_add")


def conv_bn_act(x, filters: int, kernel: int, stride: int, prefix: str, bn: dict, activation: str | None,
                explicit_padding: bool = True):
    """Convolution, batch norm and (when ``activation``) an activation, named ``prefix`` + ``conv``,
    ``bn``, ``activation`` as keras.applications names them (``stem_conv``, ``block2a_expand_bn``, ...).

    >>> import keras
    >>> inputs = keras.Input((32, 32, 3))
    >>> model = keras.Model(inputs, conv_bn_act(inputs, 8, 3, 2, "block1a_expand_", {}, "swish"))
    >>> [layer.name for layer in model.layers[1:]]
    ['block1a_expand_conv_pad', 'block1a_expand_conv', 'block1a_expand_bn', 'block1a_expand_activation']
    >>> model.output.shape
    (None, 16, 16, 8)
    """
    x, padding = strided_conv_padding(x, kernel, stride, prefix + "conv_pad", explicit_padding)
    x = layers.Conv2D(filters, kernel, strides=stride, padding=padding, use_bias=False,
                      kernel_initializer=CONV_INIT, name=prefix + "conv")(x)
    x = batch_norm(prefix + "bn", bn)(x)
    if activation:
        x = layers.Activation(activation, name=prefix + "activation")(x)
    return x


def depthwise_bn_act(x, block: BlockPlan, bn: dict):
    name = block.name + "_"
    convention = CONVENTIONS[block.convention]
    x, padding = strided_conv_padding(x, block.kernel, block.stride, name + "dwconv_pad",
                                      convention.explicit_padding)
    x = layers.DepthwiseConv2D(block.kernel, strides=block.stride, padding=padding, use_bias=False,
                               depthwise_initializer=CONV_INIT, name=name + convention.depthwise_name)(x)
    x = batch_norm(name + "bn", bn)(x)
    return layers.Activation(block.activation, name=name + "activation")(x)


def mbconv(inputs, block: BlockPlan, bn: dict):
    """Inverted residual: 1x1 expand, kxk depthwise, SE, 1x1 linear projection."""
    name = block.name + "_"
    x = inputs
    if block.has_expansion:
        x = conv_bn_act(x, block.expanded, 1, 1, name + "expand_", bn, block.activation)
    x = depthwise_bn_act(x, block, bn)
    if block.se_filters:
        x = squeeze_excite(x, block, block.expanded)
    x = conv_bn_act(x, block.filters_out, 1, 1, name + "project_", bn, None)
    return residual(x, inputs, block)


def fused_mbconv(inputs, block: BlockPlan, bn: dict):
    """Fused-MBConv (EfficientNetV2): one kxk expansion conv replaces 1x1 expand + depthwise."""
    name = block.name + "_"
    explicit = CONVENTIONS[block.convention].explicit_padding
    x = inputs
    if block.has_expansion:
        x = conv_bn_act(x, block.expanded, block.kernel, block.stride, name + "expand_", bn,
                        block.activation, explicit)
    if block.se_filters:
        x = squeeze_excite(x, block, block.expanded)
    if block.has_expansion:
        x = conv_bn_act(x, block.filters_out, 1, 1, name + "project_", bn, None)
    else:
        x = conv_bn_act(x, block.filters_out, block.kernel, block.stride, name + "project_", bn,
                        block.activation, explicit)
    return residual(x, inputs, block)


def depthwise_separable(inputs, block: BlockPlan, bn: dict):
    """MobileNetV1-style: kxk depthwise, SE, 1x1 pointwise with activation."""
    name = block.name + "_"
    x = depthwise_bn_act(inputs, block, bn)
    if block.se_filters:
        x = squeeze_excite(x, block, block.filters_in)
    x = conv_bn_act(x, block.filters_out, 1, 1, name + "project_", bn, block.activation)
    return residual(x, inputs, block)

