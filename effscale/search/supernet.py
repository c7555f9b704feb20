"""A weight-sharing supernet over a :class:`~effscale.search.space.SearchSpace` (FBNetV2 / ProxylessNAS style).

Every layer of the network exists once, at its largest size, and every open choice is a mask
on it, so memory stays at one max-size path per layer whatever the number of candidates:

* kernel: one depthwise kernel of the largest size; a smaller kernel is its centred k x k mask.
  The kernel actually applied is ``sum_k w_k * mask_k * W`` (one convolution: depthwise
  convolution is linear in its kernel);
* expand ratio: one 1x1 expansion to the largest expanded width; ratio e keeps its first
  ``round(cin * e)`` channels (a channel mask, applied after the expansion and again after the
  depthwise BN); ratio 1 is the input itself (zero-padded), as an MBConv without expansion;
* SE ratio: one squeeze-excite of the largest reduced width, masked per ratio; ratio 0 is a
  gate of 1;
* skip: the identity shortcut scaled by the weight of ``True``;
* repeats ("fewer / more layers"): a stage holds its largest number of layers; layer j is
  gated by the total weight of the repeat values that include it: ``g * block(x) + (1 - g) * x``.

``weights`` (one vector per hyperparameter of the space, same order as its choices) come from
:func:`sample_weights`: straight-through Gumbel-softmax samples, one-hot in the forward pass (the
sampled sub-network runs exactly) with the softmax's gradient in the backward pass.

Limits: block type and output filters must be closed (stages are then independent, which makes
the expected cost exact, see :mod:`effscale.search.differentiable`); only block types registered
as ``mixable`` (:mod:`effscale.block_types`: MBConv and depthwise-separable) are supported, so
Fused-MBConv stages are not. Strided convolutions pad 'same' (the built model pads like keras.applications): the
supernet only ranks choices; the derived genotype is retrained from scratch.

>>> from effscale.search.space import SearchSpace
>>> space = SearchSpace("tiny", open=("kernel", "repeats"), stages=(3,))
>>> check_space(space)
>>> check_space(SearchSpace("tiny", open=("filters",), stages=(3,)))
Traceback (most recent call last):
...
effscale.errors.UserError: differentiable search does not search filters; close it (--open without it)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from effscale.block_types import block_type, registered, titles
from effscale.errors import UserError
from effscale.search.space import SearchSpace

SEARCHABLE = ("kernel", "expand", "se", "skip", "repeats")


def check_space(space: SearchSpace) -> None:
    """UserError when the supernet cannot represent ``space`` (see the module docstring)."""
    for choice in ("filters", "block"):
        if choice in space.open:
            raise UserError(f"differentiable search does not search {choice}; close it "
                            "(--open without it)")
    for number, stage in enumerate(space.reference.stages, start=1):
        kind = block_type(stage.block)
        if not kind.mixable:  # BlockType.mixable: the mixed layer below computes it
            raise UserError(f"differentiable search supports {titles(t for t in registered() if t.mixable)} "
                            f"stages; stage {number} is {kind.title}")


def max_genotype(space: SearchSpace):
    """The reference with every searched stage at its largest kernel, expansion, SE and repeats."""
    values = space.default_values()
    for name in space.names:
        if name.rsplit("/", 1)[1] in ("kernel", "expand", "se", "repeats"):
            values[name] = max(space.choices(name))
    return space.to_genotype(values)


@dataclass(frozen=True)
class BlockSpec:
    """One supernet layer: channel counts at the proxy variant and the names of its choices."""

    name: str
    stage: int
    index: int                   # position in its stage (0 strides)
    filters_in: int
    filters_out: int
    stride: int
    activation: str
    dsconv: bool                 # no expansion conv (the depthwise-separable form): activated projection
    kernels: tuple               # candidate kernel sizes (one when closed)
    expanded: tuple              # candidate expanded widths (one when closed)
    se_filters: tuple            # candidate SE reduced widths, 0 = no SE
    residual_possible: bool
    default_skip: bool
    choice_names: dict           # "kernel" / "expand" / "se" / "skip" -> hyperparameter name


def block_specs(space: SearchSpace, variant) -> list[BlockSpec]:
    """The supernet's layers for ``space`` at ``variant`` (a Variant or its spelling)."""
    from effscale.plan import network_plan
    from effscale.variants import resolve_variant

    check_space(space)
    biggest = max_genotype(space)
    variant = resolve_variant(variant, biggest)
    plan = network_plan(biggest, variant, drop_connect=0.0)
    specs, offset = [], 0
    for number, (stage, count) in enumerate(zip(biggest.stages, plan.stage_repeats), start=1):
        prefix = f"stage{number}/"
        names = {c: prefix + c for c in ("kernel", "expand", "se", "skip") if prefix + c in space.names}
        kernels = space.choices(names["kernel"]) if "kernel" in names else (stage.kernel,)
        expands = space.choices(names["expand"]) if "expand" in names else (stage.expand,)
        ratios = space.choices(names["se"]) if "se" in names else (stage.se,)
        separable = not block_type(stage.block).expands
        for j in range(count):
            block = plan.blocks[offset + j]
            cin = block.filters_in
            expanded = (cin,) if separable else tuple(int(round(cin * e)) for e in expands)
            se = tuple(max(1, int(cin * r)) if r > 0 else 0 for r in ratios)
            specs.append(BlockSpec(block.name, number, j, cin, block.filters_out, block.stride, block.activation,
                                   separable, tuple(kernels), expanded, se,
                                   block.stride == 1 and cin == block.filters_out,
                                   space.reference.stages[number - 1].skip, names))
        offset += count
    return specs


def repeat_gates(space: SearchSpace, variant) -> dict:
    """``{(stage, layer index): [indices of the repeats choices that include the layer]}`` for
    the layers a repeats choice can drop (at ``variant``'s depth)."""
    from effscale.scaling import round_repeats
    from effscale.variants import resolve_variant

    depth = resolve_variant(variant, space.reference).depth
    gates = {}
    for number in space.stages:
        name = f"stage{number}/repeats"
        if name not in space.names:
            continue
        counts = [round_repeats(v, depth) for v in space.choices(name)]
        for j in range(min(counts), max(counts)):
            gates[(number, j)] = [i for i, c in enumerate(counts) if c > j]
    return gates


def sample_weights(logits: dict, generator, temperature: float = 1.0, hard: bool = True) -> dict:
    """Straight-through Gumbel-softmax weights, one vector per logit vector.

    ``hard``: one-hot forward (the sampled choice), softmax gradient backward. ``generator``
    None gives the plain softmax (or the argmax one-hot when ``hard``).

    >>> import tensorflow as tf
    >>> w = sample_weights({"a": tf.constant([0.0, 5.0])}, None)
    >>> w["a"].numpy().tolist()
    [0.0, 1.0]
    """
    import tensorflow as tf

    out = {}
    for name, value in logits.items():
        value = tf.convert_to_tensor(value)
        if generator is not None:
            uniform = generator.uniform(tf.shape(value), 1e-6, 1.0 - 1e-6)
            value = value - tf.math.log(-tf.math.log(uniform))
        soft = tf.nn.softmax(value / temperature)
        if hard:
            one_hot = tf.one_hot(tf.argmax(soft), tf.size(soft), dtype=soft.dtype)
            soft = one_hot - tf.stop_gradient(soft) + soft
        out[name] = soft
    return out


def _mix(weights, name, values):
    """sum_i w[name][i] * values[i] (values[0] when the choice is closed)."""
    if name is None:
        return values[0]
    w = weights[name]
    total = w[0] * values[0]
    for i in range(1, len(values)):
        total = total + w[i] * values[i]
    return total


def _mixed_block_class():
    import keras
    import tensorflow as tf
    from keras import layers

    from effscale.blocks import CONV_INIT

    class MixedBlock(layers.Layer):
        """One max-size MBConv (or depthwise-separable) layer with masked choices."""

        def __init__(self, spec: BlockSpec, bn_momentum: float, **kwargs):
            super().__init__(name=spec.name, **kwargs)
            self.spec = spec
            s = spec
            self.act = keras.activations.get(s.activation)
            self.wide = max(s.expanded)
            self.expands = any(c != s.filters_in for c in s.expanded)
            k = max(s.kernels)
            self.dw_kernel = self.add_weight((k, k, self.wide, 1), CONV_INIT, name="dwconv")
            self.dw_bn = layers.BatchNormalization(momentum=bn_momentum, name="bn")
            if self.expands:
                self.expand_kernel = self.add_weight((1, 1, s.filters_in, self.wide), CONV_INIT, name="expand_conv")
                self.expand_bn = layers.BatchNormalization(momentum=bn_momentum, name="expand_bn")
            self.reduced = max(s.se_filters)
            if self.reduced:
                self.se_reduce = self.add_weight((self.wide, self.reduced), CONV_INIT, name="se_reduce")
                self.se_reduce_bias = self.add_weight((self.reduced,), "zeros", name="se_reduce_bias")
                self.se_expand = self.add_weight((self.reduced, self.wide), CONV_INIT, name="se_expand")
                self.se_expand_bias = self.add_weight((self.wide,), "zeros", name="se_expand_bias")
            self.project_kernel = self.add_weight((1, 1, self.wide, s.filters_out), CONV_INIT, name="project_conv")
            self.project_bn = layers.BatchNormalization(momentum=bn_momentum, name="project_bn")
            masks = np.zeros((len(s.kernels), k, k, 1, 1), "float32")
            for i, size in enumerate(s.kernels):
                lo = (k - size) // 2
                masks[i, lo:lo + size, lo:lo + size] = 1
            self.kernel_masks = [tf.constant(m) for m in masks]
            self.channel_masks = [tf.constant((np.arange(self.wide) < c).astype("float32")) for c in s.expanded]
            self.se_masks = [tf.constant((np.arange(max(self.reduced, 1)) < r).astype("float32"))
                             for r in s.se_filters]

        def call(self, x, arch, gate=None, training=False):
            s, names = self.spec, self.spec.choice_names
            inputs = x
            if self.expands:
                h = tf.nn.conv2d(x, self.expand_kernel, 1, "SAME")
                h = self.act(self.expand_bn(h, training=training))
                identity = tf.pad(x, [[0, 0], [0, 0], [0, 0], [0, self.wide - s.filters_in]])
                # Identity (ratio 1) and expanded parts share one tensor each: h * mixed mask.
                parts = [identity if c == s.filters_in else None for c in s.expanded]
                w_exp = arch[names["expand"]] if "expand" in names else tf.ones([1])
                h_mask = sum(w_exp[i] * self.channel_masks[i] for i, p in enumerate(parts) if p is None)
                x = h * h_mask
                if any(p is not None for p in parts):
                    i = next(i for i, p in enumerate(parts) if p is not None)
                    x = x + w_exp[i] * identity
                channel_mask = _mix(arch, names.get("expand"), self.channel_masks)
            else:
                channel_mask = None
            kernel = self.dw_kernel * _mix(arch, names.get("kernel"), self.kernel_masks)
            x = tf.nn.depthwise_conv2d(x, kernel, [1, s.stride, s.stride, 1], "SAME")
            x = self.act(self.dw_bn(x, training=training))
            if channel_mask is not None:
                x = x * channel_mask
            if self.reduced:
                pooled = tf.reduce_mean(x, axis=[1, 2])
                reduced = self.act(tf.matmul(pooled, self.se_reduce) + self.se_reduce_bias)
                gates = []
                for r, mask in zip(s.se_filters, self.se_masks):
                    if r == 0:
                        gates.append(tf.ones_like(pooled))
                    else:
                        gates.append(tf.sigmoid(tf.matmul(reduced * mask, self.se_expand) + self.se_expand_bias))
                x = x * _mix(arch, names.get("se"), gates)[:, None, None, :]
            x = tf.nn.conv2d(x, self.project_kernel, 1, "SAME")
            x = self.project_bn(x, training=training)
            if s.dsconv:
                x = self.act(x)
            if s.residual_possible:
                if "skip" in names:
                    x = x + arch[names["skip"]][0] * inputs  # choices are (True, False)
                elif s.default_skip:
                    x = x + inputs
            if gate is not None:
                x = gate * x + (1.0 - gate) * inputs
            return x

    return MixedBlock


def Supernet(space: SearchSpace, variant, classes: int, bn_momentum: float = 0.9):
    """A ``keras.Model`` whose ``call(images, arch, training=)`` runs the sub-network the
    ``arch`` weights (from :func:`sample_weights`) pick; images are pixels in [0, 255].

    >>> import tensorflow as tf
    >>> space = SearchSpace("tiny", open=("kernel", "expand", "repeats"), stages=(3,))
    >>> net = Supernet(space, "w=0.25,d=1,r=8", classes=10)
    >>> logits = {n: tf.zeros(len(space.choices(n))) for n in space.names}
    >>> net(tf.zeros((2, 8, 8, 3)), sample_weights(logits, None)).shape
    TensorShape([2, 10])
    """
    import keras
    import tensorflow as tf
    from keras import layers

    from effscale.builder import IMAGENET_MEAN, IMAGENET_STDDEV
    from effscale.plan import network_plan
    from effscale.variants import resolve_variant

    specs = block_specs(space, variant)
    gates = repeat_gates(space, variant)
    plan = network_plan(space.reference, resolve_variant(variant, space.reference))
    mixed_block = _mixed_block_class()

    class _Supernet(keras.Model):
        def __init__(self):
            super().__init__(name="supernet")
            self.stem = layers.Conv2D(plan.stem_filters, 3, strides=2, padding="same", use_bias=False,
                                      name="stem_conv")
            self.stem_bn = layers.BatchNormalization(momentum=bn_momentum, name="stem_bn")
            self.blocks = [mixed_block(spec, bn_momentum) for spec in specs]
            self.top = layers.Conv2D(plan.head_filters, 1, use_bias=False, name="top_conv")
            self.top_bn = layers.BatchNormalization(momentum=bn_momentum, name="top_bn")
            self.classifier = layers.Dense(classes, name="predictions")
            self.act = keras.activations.get(plan.activation)
            self.mean = tf.constant(IMAGENET_MEAN, "float32")
            self.std = tf.constant(IMAGENET_STDDEV, "float32")

        def call(self, images, arch, training=False):
            x = (images / 255.0 - self.mean) / self.std
            x = self.act(self.stem_bn(self.stem(x), training=training))
            for block in self.blocks:
                spec = block.spec
                gate = None
                if (spec.stage, spec.index) in gates:
                    w = arch[f"stage{spec.stage}/repeats"]
                    gate = tf.add_n([w[i] for i in gates[(spec.stage, spec.index)]])
                x = block(x, arch, gate=gate, training=training)
            x = self.act(self.top_bn(self.top(x), training=training))
            return self.classifier(tf.reduce_mean(x, axis=[1, 2]))

    return _Supernet()
