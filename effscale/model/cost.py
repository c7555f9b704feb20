"""Cost of a network: parameters, multiply-adds and TensorFlow-profiler FLOPs.

Parameters and multiply-adds are computed analytically from the resolved plan (no model is
built, so they are cheap enough to call inside a search or a cost-target solver).
Multiply-adds count every convolution (including SE's 1x1 convolutions) and the dense
layer, as the EfficientNet and MnasNet papers' "FLOPS" do.

>>> from effscale.model.zoo import get_genotype
>>> from effscale.model.variants import resolve_variant
>>> g = get_genotype("efficientnet-b0")
>>> parameter_count(g, resolve_variant("b0", g))
5330571
>>> round(multiply_adds(g, resolve_variant("b0", g)) / 1e9, 2)
0.39
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from effscale.model.block_cost import bn_weights as _bn
from effscale.model.block_types import block_type
from effscale.model.conventions import CONVENTIONS
from effscale.model.genotype import Genotype
from effscale.model.zoo import load_genotype
from effscale.model.plan import NetworkPlan, network_plan
from effscale.model.scaling import Variant, parse_variant


@dataclass(frozen=True)
class Cost:
    """Analytic cost of one genotype at one variant."""

    parameters: int
    trainable_parameters: int
    multiply_adds: int
    resolution: int

    def to_dict(self) -> dict:
        return {"parameters": self.parameters, "trainable_parameters": self.trainable_parameters,
                "multiply_adds": self.multiply_adds, "resolution": self.resolution}


def _out_size(size: int, stride: int) -> int:
    return math.ceil(size / stride)


def plan_cost(plan: NetworkPlan, classes: int = 1000, include_top: bool = True,
              include_preprocessing: bool = True) -> Cost:
    size = _out_size(plan.resolution, 2)
    trainable = 9 * 3 * plan.stem_filters + _bn(plan.stem_filters)[0]
    normalization = CONVENTIONS[plan.convention].normalization_weights if plan.inputs == "imagenet" else 0
    non_trainable = _bn(plan.stem_filters)[1] + (normalization if include_preprocessing else 0)
    macs = 9 * 3 * plan.stem_filters * size * size
    for block in plan.blocks:  # each block type's own cost function (effscale.model.block_cost)
        out = _out_size(size, block.stride)
        t, n, m = block_type(block.block).cost(block, size, out)
        trainable, non_trainable, macs, size = trainable + t, non_trainable + n, macs + m, out
    last = plan.blocks[-1].filters_out
    trainable += last * plan.head_filters + _bn(plan.head_filters)[0]
    non_trainable += _bn(plan.head_filters)[1]
    macs += last * plan.head_filters * size * size
    if include_top:
        trainable += plan.head_filters * classes + classes
        macs += plan.head_filters * classes
    return Cost(trainable + non_trainable, trainable, macs, plan.resolution)


def cost(genotype: "Genotype | str", variant: "Variant | str" = "b0", classes: int = 1000,
         include_top: bool = True) -> Cost:
    """Analytic :class:`Cost` of ``genotype`` at ``variant``.

    >>> cost("mobilenet-v2").trainable_parameters
    3504872
    """
    genotype = load_genotype(genotype)
    return plan_cost(network_plan(genotype, parse_variant(variant, genotype)), classes, include_top)


def parameter_count(genotype: "Genotype | str", variant: "Variant | str" = "b0", classes: int = 1000,
                    include_top: bool = True) -> int:
    return cost(genotype, variant, classes, include_top).parameters


def multiply_adds(genotype: "Genotype | str", variant: "Variant | str" = "b0", classes: int = 1000,
                  include_top: bool = True) -> int:
    return cost(genotype, variant, classes, include_top).multiply_adds


def model_parameters(model) -> tuple[int, int]:
    """(trainable, non-trainable) parameter counts of a built Keras model."""
    import numpy as np

    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    return trainable, model.count_params() - trainable


def profiler_flops(model, batch_size: int = 1) -> int:
    """Every float operation of one forward pass, as TensorFlow's graph profiler counts them
    (convolutions count 2 per multiply-add; BN, activations and adds count too).

    >>> import effscale
    >>> profiler_flops(effscale.build("tiny", "w=0.25,d=0.25,r=16", classes=2)) > 0
    True
    """
    import tensorflow as tf

    spec = tf.TensorSpec([batch_size, *model.input_shape[1:]], model.inputs[0].dtype)
    # The traced graph reads variables rather than folding them: same count, several times faster.
    concrete = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    info = tf.compat.v1.profiler.profile(graph=concrete.graph, run_meta=tf.compat.v1.RunMetadata(),
                                         cmd="op", options=options)
    return int(info.total_float_ops)
