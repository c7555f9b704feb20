"""Implementation conventions of a genotype's reference models: EfficientNet V1 or V2.

The two keras.applications families build the same kinds of blocks with small differences
that decide whether weights and outputs match: how stride-2 convolutions pad, what the
depthwise convolution is called, how channel counts round under a width multiplier and how
the inputs are preprocessed. A genotype names its convention (``Genotype.convention``); the
plan, the builder, the cost model and the scaling rules read this table.

>>> CONVENTIONS["v2"].depthwise_name, CONVENTIONS["v1"].explicit_padding
('dwconv2', True)
>>> CONVENTIONS["v2"].normalization_weights
0
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Convention:
    # Stride-2 convolutions pad symmetrically with a ZeroPadding2D layer (the TF reference
    # of V1) rather than with Keras 'same' (V2), which pads only after the odd pixel.
    explicit_padding: bool
    depthwise_name: str
    # V1 rounds scaled channels up when rounding to the divisor lost more than 10%; V2 does not.
    filter_round_up_guard: bool
    # Non-trainable weights of the ImageNet Normalization layer: V1 stores mean, variance and
    # count as weights (3 + 3 + 1); V2 passes them as constants, so the layer holds none.
    normalization_weights: int
    bn_momentum: float              # keras.applications' BatchNormalization momentum
    # Drop-connect grows linearly with the block index up to drop_connect x index / total;
    # V1 divides by the scaled block count, V2 by the genotype's unscaled one (so deeper
    # variants end above drop_connect).
    drop_rate_over_unscaled_depth: bool
    source: str


CONVENTIONS: dict[str, Convention] = {
    "v1": Convention(True, "dwconv", True, 3 + 3 + 1, 0.99, False,
                     "Tan & Le 2019, arXiv 1905.11946; keras.applications efficientnet.py"),
    "v2": Convention(False, "dwconv2", False, 0, 0.9, True,
                     "Tan & Le 2021, arXiv 2104.00298; keras.applications efficientnet_v2.py"),
}

# How a model turns pixels in [0, 255] into network inputs (``Genotype.inputs``).
INPUTS = {
    "imagenet": "x / 255, then normalized by the ImageNet mean and standard deviation",
    "signed": "x / 128 - 1, so pixels land in [-1, 1] (EfficientNetV2-S/M/L)",
}
