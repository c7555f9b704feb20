"""A weight-sharing supernet over a :class:`~effscale.search.space.SearchSpace` (FBNetV2 / ProxylessNAS style).

Every layer of the network exists once, at its largest size, and every open choice is a mask
on it or a weighted sum of a few branches, so memory stays at one max-size path per layer and
block type whatever the number of candidates:

* filters: a stage's layers are as wide as its largest output filters; filters f keeps the
  first f channels (a channel mask after each projection's BN), so the next layer sees zeros
  beyond them and its weights on those channels do nothing: at a one-hot weight the layer is
  exactly the narrow one with the leading slice of the shared weights (FBNetV2's channel masks);
* block type: one branch per type the stage may take, summed with the block weights; every
  branch is the mixed layer below, with the 1x1 expansion when the type ``expands`` and an
  activated projection when it does not (the depthwise-separable form); only types registered
  as ``mixable`` (:mod:`effscale.model.block_types`) have one;
* kernel: one depthwise kernel of the largest size; a smaller kernel is its centred k x k mask.
  The kernel actually applied is ``sum_k w_k * mask_k * W`` (one convolution: depthwise
  convolution is linear in its kernel);
* expand ratio: one 1x1 expansion to the largest expanded width; input width c and ratio e keep
  its first ``round(c * e)`` channels (a channel mask, applied after the expansion and again
  after the depthwise BN); a ratio that does not expand is the input itself (zero-padded), as an
  MBConv without expansion;
* SE ratio: one squeeze-excite of the largest reduced width, masked per ratio and input width;
  ratio 0 is a gate of 1;
* skip: the identity shortcut scaled by the weight of ``True`` and, where the input and output
  widths are both searched, by the weight of them being equal;
* repeats ("fewer / more layers"): a stage holds its largest number of layers; layer j is
  gated by the total weight of the repeat values that include it: ``g * block(x) + (1 - g) * x``.

``weights`` (one vector per hyperparameter of the space, same order as its choices) come from
:func:`sample_weights`: straight-through Gumbel-softmax samples, one-hot in the forward pass (the
sampled sub-network runs exactly) with the softmax's gradient in the backward pass.

Limits: a block type that is not ``mixable`` (Fused-MBConv: its kxk expansion is not the mixed
layer's) cannot be a reference stage (:func:`check_space` refuses it) and is taken out of the
block choices by :func:`supernet_space`, which says so in one line. Strided convolutions pad
'same' (the built model pads like keras.applications) and BN statistics are shared across
choices: the supernet only ranks choices; the derived genotype is retrained from scratch.

>>> from effscale.search.space import SearchSpace
>>> space, note = supernet_space(SearchSpace("tiny", stages=(3,)))
>>> space.choices("stage3/block"), note
(('mbconv', 'dsconv'), 'differentiable search: Fused-MBConv is not mixable, so stage block choices are MBConv and depthwise-separable')
>>> supernet_space(SearchSpace("tiny", open=("kernel", "filters"), stages=(3,)))[1] is None
True
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from effscale.model.block_types import block_type, registered, titles
from effscale.common.errors import UserError
from effscale.search.space import SearchSpace

SEARCHABLE = ("block", "kernel", "expand", "se", "skip", "repeats", "filters")


def check_space(space: SearchSpace) -> None:
    """UserError when a reference stage of ``space`` has a block type the supernet cannot
    compute (not ``mixable``): that stage cannot be closed at anything the supernet runs.

    >>> check_space(SearchSpace("tiny", stages=(3,)))
    >>> check_space(SearchSpace("efficientnetv2-b0", open=("kernel",)))
    Traceback (most recent call last):
    ...
    effscale.common.errors.UserError: differentiable search supports MBConv and depthwise-separable stages; stage 1 is Fused-MBConv
    """
    for number, stage in enumerate(space.reference.stages, start=1):
        kind = block_type(stage.block)
        if not kind.mixable:  # BlockType.mixable: the mixed layer below computes it
            raise UserError(f"differentiable search supports {titles(t for t in registered() if t.mixable)} "
                            f"stages; stage {number} is {kind.title}")


def supernet_space(space: SearchSpace) -> tuple[SearchSpace, str | None]:
    """The space the supernet searches and the one line that says what it closed (None when nothing).

    Every choice is relaxed (see the module docstring) except block types that are not
    ``mixable``: they leave the block choices (the block choice is closed at the reference's
    type when no other mixable type is left). The result's values are values of ``space``.

    >>> searched, note = supernet_space(SearchSpace("tiny", open=("block", "kernel"), options={"block": ("fused",)}))
    >>> searched.open, note
    (('kernel',), "differentiable search: Fused-MBConv is not mixable, so block is closed at the reference's")
    """
    check_space(space)
    offered = {b for n in space.names if n.endswith("/block") for b in space.choices(n)}
    dropped = [block_type(b) for b in sorted(offered) if not block_type(b).mixable]
    if not dropped:
        return space, None
    kept = tuple(b for b in space.options["block"] if block_type(b).mixable)
    if kept:
        narrowed = SearchSpace(space.reference, open=space.open, options=dict(space.options, block=kept),
                               stages=space.stages)
        left = {b for n in narrowed.names if n.endswith("/block") for b in narrowed.choices(n)}
        what = "stage block choices are " + titles(t for t in registered() if t.name in left)
    else:
        narrowed = SearchSpace(space.reference, open=[c for c in space.open if c != "block"],
                               options=space.options, stages=space.stages)
        what = "block is closed at the reference's"
    verb = "is" if len(dropped) == 1 else "are"
    return narrowed, f"differentiable search: {titles(dropped)} {verb} not mixable, so {what}"


def complete_values(space: SearchSpace, searched: SearchSpace, values: dict) -> dict:
    """``values`` of ``searched`` (a :func:`supernet_space` of ``space``) as values of ``space``:
    closed choices at the reference's, inactive ones left out.

    >>> space = SearchSpace("tiny", open=("block", "expand"), stages=(2,), options={"block": ("fused",)})
    >>> searched, _ = supernet_space(space)
    >>> complete_values(space, searched, {"stage2/expand": 6})
    {'stage2/block': 'mbconv', 'stage2/expand': 6}
    """
    full = dict(space.default_values(), **values)
    return {n: full[n] for n in space.names if n in full and space.is_active(n, full)}


def max_genotype(space: SearchSpace):
    """The reference with every searched stage at its largest kernel, expansion, SE, repeats and filters.

    >>> max_genotype(SearchSpace("tiny", open=("repeats", "filters"), stages=(2,))).stages[1].encode()  # e4 closed
    'mb_r2_k3_s2_e4_c32_se0.25'
    """
    values = space.default_values()
    for name in space.names:
        if name.rsplit("/", 1)[1] in ("kernel", "expand", "se", "repeats", "filters"):
            values[name] = max(space.choices(name))
    return space.to_genotype(values)


@dataclass(frozen=True)
class BlockSpec:
    """One supernet layer: its candidate channel counts at the proxy variant and its choices' names.

    ``choice_names`` maps "block" / "kernel" / "expand" / "se" / "skip" / "filters" (its output
    width) / "filters_in" (its input width: the previous stage's filters for a stage's first
    layer) to the hyperparameter that decides it; a closed one is absent and has one candidate."""

    name: str
    stage: int
    index: int                   # position in its stage (0 strides)
    filters_in: tuple            # candidate input widths, in the order of choice_names["filters_in"]
    filters_out: tuple           # candidate output widths, in the order of choice_names["filters"]
    stride: int
    activation: str
    blocks: tuple                # candidate block type names (all mixable)
    kernels: tuple               # candidate kernel sizes
    expands: tuple               # candidate expand ratios of the types that expand
    se_ratios: tuple             # candidate SE ratios (of the input width), 0 = no SE
    default_skip: bool
    choice_names: dict

    @staticmethod
    def expanded(filters_in: int, expand) -> int:
        """Channels after the expansion, as :func:`effscale.model.plan.network_plan` counts them.

        >>> BlockSpec.expanded(24, 6), BlockSpec.expanded(24, 1)
        (144, 24)
        """
        return int(round(filters_in * expand))

    @staticmethod
    def se_filters(filters_in: int, ratio) -> int:
        """SE's reduced width, as :func:`effscale.model.plan.network_plan` counts it (0: no SE).

        >>> BlockSpec.se_filters(24, 0.25), BlockSpec.se_filters(2, 0.25), BlockSpec.se_filters(24, 0.0)
        (6, 1, 0)
        """
        return max(1, int(filters_in * ratio)) if ratio > 0 else 0


def _stage_widths(space: SearchSpace, biggest, variant) -> dict:
    """``{stage number: proxy-variant output widths, one per filters choice}`` (read from the plan)."""
    from effscale.model.plan import network_plan

    widths = {}
    for number, stage in enumerate(biggest.stages, start=1):
        name = f"stage{number}/filters"
        out = []
        for f in (space.choices(name) if name in space.names else (stage.filters,)):
            stages = list(biggest.stages)
            stages[number - 1] = dataclasses.replace(stage, filters=f)
            plan = network_plan(biggest.replace(stages=tuple(stages)), variant, drop_connect=0.0)
            out.append(plan.blocks[sum(plan.stage_repeats[:number - 1])].filters_out)
        widths[number] = tuple(out)
    return widths


def block_specs(space: SearchSpace, variant) -> list[BlockSpec]:
    """The supernet's layers for ``space`` at ``variant`` (a Variant or its spelling).

    >>> specs = block_specs(SearchSpace("tiny", open=("filters",), stages=(2, 3)), "w=1,d=1,r=32")
    >>> [(s.name, s.filters_in, s.filters_out) for s in specs[1:4]]  # 0.75x 24 rounds up to 24
    [('block2a', (16,), (24, 32)), ('block3a', (24, 32), (32, 40, 48)), ('block3b', (32, 40, 48), (32, 40, 48))]
    """
    from effscale.model.plan import network_plan
    from effscale.model.variants import resolve_variant

    check_space(space)
    for name in space.names:
        if name.endswith("/block") and not all(block_type(b).mixable for b in space.choices(name)):
            raise UserError(f"{name} offers a block type that is not mixable; search supernet_space(space)")
    biggest = max_genotype(space)
    variant = resolve_variant(variant, biggest)
    plan = network_plan(biggest, variant, drop_connect=0.0)
    widths = _stage_widths(space, biggest, variant)
    specs, offset = [], 0
    inputs, inputs_name = (plan.stem_filters,), None
    for number, (stage, count) in enumerate(zip(biggest.stages, plan.stage_repeats), start=1):
        prefix = f"stage{number}/"
        ref = space.reference.stages[number - 1]
        names = {c: prefix + c for c in SEARCHABLE if prefix + c in space.names and c != "repeats"}
        blocks = space.choices(names["block"]) if "block" in names else (ref.block,)
        kernels = space.choices(names["kernel"]) if "kernel" in names else (ref.kernel,)
        closed_expand = ref.expand if block_type(ref.block).expands else 1  # as SearchSpace.to_genotype
        expands = space.choices(names["expand"]) if "expand" in names else (closed_expand,)
        ratios = space.choices(names["se"]) if "se" in names else (ref.se,)
        for j in range(count):
            block = plan.blocks[offset + j]
            own = dict(names)
            if inputs_name:
                own["filters_in"] = inputs_name
            specs.append(BlockSpec(block.name, number, j, inputs, widths[number], block.stride, block.activation,
                                   tuple(blocks), tuple(kernels), tuple(expands), tuple(ratios), ref.skip, own))
            inputs, inputs_name = widths[number], names.get("filters")
        offset += count
    return specs


def repeat_gates(space: SearchSpace, variant) -> dict:
    """``{(stage, layer index): [indices of the repeats choices that include the layer]}`` for
    the layers a repeats choice can drop (at ``variant``'s depth).

    >>> repeat_gates(SearchSpace("tiny", open=("repeats",), stages=(3,)), "w=1,d=1,r=32")
    {(3, 1): [1, 2], (3, 2): [2]}
    """
    from effscale.model.scaling import round_repeats
    from effscale.model.variants import resolve_variant

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


def _choice_weights(arch, spec: BlockSpec, choice: str, count: int) -> list:
    """The weights of a layer's candidates for ``choice`` (``[1.0]`` when it is closed)."""
    name = spec.choice_names.get(choice)
    if name is None:
        return [1.0] * count
    return [arch[name][i] for i in range(count)]


def _weighted(pairs):
    """sum of weight * value over ``(weight, value)`` pairs; None when there are none."""
    total = None
    for weight, value in pairs:
        total = weight * value if total is None else total + weight * value
    return total


def _mixed_layer_classes():
    import keras
    import tensorflow as tf
    from keras import layers

    from effscale.model.blocks import CONV_INIT

    def mask(width: int, size: int):
        return tf.constant((np.arange(size) < width).astype("float32"))

    class Branch(layers.Layer):
        """One block type of a mixed layer at its widest: an optional 1x1 expansion (types that
        ``expand``), a kxk depthwise conv, SE and a 1x1 projection (activated when the type does
        not expand), every open choice a mask."""

        def __init__(self, spec: BlockSpec, kind, bn_momentum: float, **kwargs):
            super().__init__(**kwargs)
            self.spec, s = spec, spec
            self.act = keras.activations.get(s.activation)
            self.expanding = kind.expands
            ratios = s.expands if kind.expands else (1,)
            # (input index, expand index) -> channels after the expansion
            self.pairs = {(i, e): s.expanded(c, r) for i, c in enumerate(s.filters_in) for e, r in enumerate(ratios)}
            self.ratios = ratios
            self.wide = max(self.pairs.values())
            self.widest_in, self.widest_out = max(s.filters_in), max(s.filters_out)
            self.convolves = any(w != s.filters_in[i] for (i, _), w in self.pairs.items())
            k = max(s.kernels)
            self.dw_kernel = self.add_weight((k, k, self.wide, 1), CONV_INIT, name="dwconv")
            self.dw_bn = layers.BatchNormalization(momentum=bn_momentum, name="bn")
            if self.convolves:
                self.expand_kernel = self.add_weight((1, 1, self.widest_in, self.wide), CONV_INIT, name="expand_conv")
                self.expand_bn = layers.BatchNormalization(momentum=bn_momentum, name="expand_bn")
            # (input index, SE index) -> reduced width; one mask per distinct width
            self.reduced_of = {(i, j): s.se_filters(c, r) for i, c in enumerate(s.filters_in)
                               for j, r in enumerate(s.se_ratios)}
            self.reduced = max(self.reduced_of.values())
            if self.reduced:
                self.se_reduce = self.add_weight((self.wide, self.reduced), CONV_INIT, name="se_reduce")
                self.se_reduce_bias = self.add_weight((self.reduced,), "zeros", name="se_reduce_bias")
                self.se_expand = self.add_weight((self.reduced, self.wide), CONV_INIT, name="se_expand")
                self.se_expand_bias = self.add_weight((self.wide,), "zeros", name="se_expand_bias")
            self.project_kernel = self.add_weight((1, 1, self.wide, self.widest_out), CONV_INIT, name="project_conv")
            self.project_bn = layers.BatchNormalization(momentum=bn_momentum, name="project_bn")
            masks = np.zeros((len(s.kernels), k, k, 1, 1), "float32")
            for i, size in enumerate(s.kernels):
                lo = (k - size) // 2
                masks[i, lo:lo + size, lo:lo + size] = 1
            self.kernel_masks = [tf.constant(m) for m in masks]
            self.wide_masks = {w: mask(w, self.wide) for w in set(self.pairs.values())}
            self.out_masks = [mask(w, self.widest_out) for w in s.filters_out]
            self.se_masks = {r: mask(r, max(self.reduced, 1)) for r in set(self.reduced_of.values())}

        def call(self, x, arch, training=False):
            s = self.spec
            w_in = _choice_weights(arch, s, "filters_in", len(s.filters_in))
            w_exp = _choice_weights(arch, s, "expand", len(self.ratios)) if self.expanding else [1.0]
            pair_w = {p: w_in[p[0]] * w_exp[p[1]] for p in self.pairs}
            identity = tf.pad(x, [[0, 0], [0, 0], [0, 0], [0, self.wide - self.widest_in]])
            keep = _weighted((pair_w[p], self.wide_masks[w]) for p, w in self.pairs.items())
            if self.convolves:  # expanded pairs take the conv's channels, the others the input itself
                h = self.act(self.expand_bn(tf.nn.conv2d(x, self.expand_kernel, 1, "SAME"), training=training))
                h = h * _weighted((pair_w[p], self.wide_masks[w]) for p, w in self.pairs.items()
                                  if w != s.filters_in[p[0]])
                same = _weighted((pair_w[p], 1.0) for p, w in self.pairs.items() if w == s.filters_in[p[0]])
                x = h if same is None else h + same * identity
            else:
                x = identity
            kernel = self.dw_kernel * _weighted(zip(_choice_weights(arch, s, "kernel", len(s.kernels)),
                                                    self.kernel_masks))
            x = tf.nn.depthwise_conv2d(x, kernel, [1, s.stride, s.stride, 1], "SAME")
            x = self.act(self.dw_bn(x, training=training)) * keep
            if self.reduced:
                pooled = tf.reduce_mean(x, axis=[1, 2])
                reduced = self.act(tf.matmul(pooled, self.se_reduce) + self.se_reduce_bias)
                w_se = _choice_weights(arch, s, "se", len(s.se_ratios))
                by_width = {}
                for (i, j), r in self.reduced_of.items():
                    by_width.setdefault(r, []).append((w_in[i], w_se[j]))
                gates = []
                for r, weights in by_width.items():
                    gate = tf.ones_like(pooled) if r == 0 else tf.sigmoid(
                        tf.matmul(reduced * self.se_masks[r], self.se_expand) + self.se_expand_bias)
                    gates.append((_weighted(weights), gate))
                x = x * _weighted(gates)[:, None, None, :]
            x = self.project_bn(tf.nn.conv2d(x, self.project_kernel, 1, "SAME"), training=training)
            if not self.expanding:
                x = self.act(x)
            return x * _weighted(zip(_choice_weights(arch, s, "filters", len(s.filters_out)), self.out_masks))

    class MixedLayer(layers.Layer):
        """One supernet layer: its block types' branches mixed by the block weights, the skip and
        the repeats gate."""

        def __init__(self, spec: BlockSpec, bn_momentum: float, **kwargs):
            super().__init__(name=spec.name, **kwargs)
            self.spec = spec
            self.branches = [Branch(spec, block_type(b), bn_momentum, name=b) for b in spec.blocks]
            self.widest_in, self.widest_out = max(spec.filters_in), max(spec.filters_out)
            # (input index, output index) of equal widths: there the identity shortcut exists
            self.equal = [(i, o) for i, c in enumerate(spec.filters_in) for o, f in enumerate(spec.filters_out)
                          if c == f] if spec.stride == 1 else []

        def call(self, x, arch, gate=None, training=False):
            s, inputs = self.spec, x
            w_block = _choice_weights(arch, s, "block", len(self.branches))
            x = _weighted((w, branch(inputs, arch, training=training)) for w, branch in zip(w_block, self.branches))
            if self.equal and ("skip" in s.choice_names or s.default_skip):
                w_in = _choice_weights(arch, s, "filters_in", len(s.filters_in))
                w_out = _choice_weights(arch, s, "filters", len(s.filters_out))
                same = _weighted((w_in[i], w_out[o]) for i, o in self.equal)
                if "skip" in s.choice_names:
                    same = same * arch[s.choice_names["skip"]][0]  # choices are (True, False)
                shortcut = inputs[..., :self.widest_out]
                if self.widest_out > self.widest_in:
                    shortcut = tf.pad(shortcut, [[0, 0], [0, 0], [0, 0], [0, self.widest_out - self.widest_in]])
                x = x + same * shortcut
            if gate is not None:
                x = gate * x + (1.0 - gate) * inputs
            return x

    return MixedLayer


def Supernet(space: SearchSpace, variant, classes: int, bn_momentum: float = 0.9):
    """A ``keras.Model`` whose ``call(images, arch, training=)`` runs the sub-network the
    ``arch`` weights (from :func:`sample_weights`) pick; images are pixels in [0, 255].
    ``space``: one whose block choices are all mixable (:func:`supernet_space` makes one).

    >>> import tensorflow as tf
    >>> space = SearchSpace("tiny", open=("kernel", "expand", "repeats", "filters"), stages=(3,))
    >>> net = Supernet(space, "w=0.25,d=1,r=8", classes=10)
    >>> logits = {n: tf.zeros(len(space.choices(n))) for n in space.names}
    >>> net(tf.zeros((2, 8, 8, 3)), sample_weights(logits, None)).shape
    TensorShape([2, 10])
    """
    import keras
    import tensorflow as tf
    from keras import layers

    from effscale.model.builder import IMAGENET_MEAN, IMAGENET_STDDEV
    from effscale.model.plan import network_plan
    from effscale.model.variants import resolve_variant

    specs = block_specs(space, variant)
    gates = repeat_gates(space, variant)
    plan = network_plan(space.reference, resolve_variant(variant, space.reference))
    mixed_layer = _mixed_layer_classes()

    class _Supernet(keras.Model):
        def __init__(self):
            super().__init__(name="supernet")
            self.stem = layers.Conv2D(plan.stem_filters, 3, strides=2, padding="same", use_bias=False,
                                      name="stem_conv")
            self.stem_bn = layers.BatchNormalization(momentum=bn_momentum, name="stem_bn")
            self.blocks = [mixed_layer(spec, bn_momentum) for spec in specs]
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
