"""Analytic cost of one block: a counting helper and the built-in block types' cost functions.

A block type's cost function (``BlockType.cost``, see :mod:`effscale.model.block_types`) is called
as ``cost(block, side, out)`` with the block's :class:`~effscale.model.plan.BlockPlan`, the side of
its input and of its output in pixels, and returns ``(trainable, non_trainable,
multiply_adds)`` of the block, squeeze-and-excitation included. :mod:`effscale.model.cost` sums them
over the plan. Multiply-adds count every convolution (SE's 1x1 convolutions included), as the
EfficientNet and MnasNet papers' "FLOPS" do; a BatchNormalization layer has two trainable and
two non-trainable weights per channel.

>>> from effscale.model.plan import network_plan
>>> from effscale.model.scaling import Variant
>>> from effscale.model.zoo import get_genotype
>>> block = network_plan(get_genotype("efficientnet-b0"), Variant("b0", 1.0, 1.0, 224)).blocks[1]
>>> block.name, block.filters_in, block.expanded, block.filters_out, block.kernel
('block2a', 16, 96, 24, 3)
>>> mbconv_cost(block, 112, 56)   # by hand: expand 16*96, depthwise 9*96, project 96*24, SE 2*96*4 + 4 + 96, BN
(6004, 432, 29203200)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from effscale.model.plan import BlockPlan


def bn_weights(channels: int) -> tuple[int, int]:
    """(trainable, non-trainable) weights of a BatchNormalization layer on ``channels``.

    >>> bn_weights(16)
    (32, 32)
    """
    return 2 * channels, 2 * channels


class Tally:
    """Running (trainable, non-trainable, multiply-adds) of one block's layers.

    >>> t = Tally()
    >>> t.conv(3, 8, 9, 4)          # a 3x3 conv, 3 -> 8 channels, 4x4 output, then BN
    >>> t.totals()
    (232, 16, 3456)
    """

    def __init__(self):
        self.trainable = self.non_trainable = self.multiply_adds = 0

    def _bn(self, channels: int) -> None:
        trainable, non_trainable = bn_weights(channels)
        self.trainable += trainable
        self.non_trainable += non_trainable

    def conv(self, cin: int, cout: int, kernel_area: int, side: int) -> None:
        """A bias-free convolution (``kernel_area`` = k*k) with a ``side`` x ``side`` output, then BN."""
        self.trainable += kernel_area * cin * cout
        self.multiply_adds += kernel_area * cin * cout * side * side
        self._bn(cout)

    def depthwise(self, channels: int, kernel_area: int, side: int) -> None:
        """A bias-free depthwise convolution with a ``side`` x ``side`` output, then BN."""
        self.trainable += kernel_area * channels
        self.multiply_adds += kernel_area * channels * side * side
        self._bn(channels)

    def squeeze_excite(self, block: "BlockPlan", channels: int) -> None:
        """SE on ``channels`` (two 1x1 convolutions with biases on the pooled vector); none
        when the block has no SE."""
        if not block.se_filters:
            return
        macs = 2 * channels * block.se_filters
        self.trainable += macs + block.se_filters + channels
        self.multiply_adds += macs

    def totals(self) -> tuple[int, int, int]:
        return self.trainable, self.non_trainable, self.multiply_adds


def mbconv_cost(block: "BlockPlan", side: int, out: int) -> tuple[int, int, int]:
    """MBConv: 1x1 expansion (when it expands), kxk depthwise, SE, 1x1 projection."""
    tally = Tally()
    if block.has_expansion:
        tally.conv(block.filters_in, block.expanded, 1, side)
    tally.depthwise(block.expanded, block.kernel * block.kernel, out)
    tally.conv(block.expanded, block.filters_out, 1, out)
    tally.squeeze_excite(block, block.expanded)
    return tally.totals()


def fused_cost(block: "BlockPlan", side: int, out: int) -> tuple[int, int, int]:
    """Fused-MBConv: kxk expansion and 1x1 projection, or one kxk conv when it does not expand; SE."""
    tally = Tally()
    k2 = block.kernel * block.kernel
    if block.has_expansion:
        tally.conv(block.filters_in, block.expanded, k2, out)
        tally.conv(block.expanded, block.filters_out, 1, out)
    else:
        tally.conv(block.filters_in, block.filters_out, k2, out)
    tally.squeeze_excite(block, block.expanded)
    return tally.totals()


def dsconv_cost(block: "BlockPlan", side: int, out: int) -> tuple[int, int, int]:
    """Depthwise-separable: kxk depthwise, SE, 1x1 pointwise."""
    tally = Tally()
    tally.depthwise(block.filters_in, block.kernel * block.kernel, out)
    tally.conv(block.filters_in, block.filters_out, 1, out)
    tally.squeeze_excite(block, block.filters_in)
    return tally.totals()
