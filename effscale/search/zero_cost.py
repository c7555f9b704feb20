"""Zero-cost proxies: score an untrained candidate on one minibatch, without training it.

Every proxy returns a float where higher means "predicted to train better":

* ``synflow`` (Tanaka et al. 2020, arXiv 2006.05467, as used for NAS by Abdelfattah et al.,
  arXiv 2101.08134): every weight replaced by its absolute value, BatchNormalization in
  inference mode, an all-ones input (fed after the model's rescaling / normalization, so the
  network sees positive values), R = the sum of the logits, score = sum over the convolution
  and dense kernels of ``|theta * dR/dtheta|``. Computed in float64, and the **natural log** is
  returned (always, not only when large): the raw sum grows geometrically with depth and
  overflows float32 for deep networks, and the log keeps the ranking.
* ``grad_norm`` (Abdelfattah et al.): sum over the convolution and dense kernels of the L2 norm
  of the cross-entropy gradient on the batch, at initialization (BN uses batch statistics).
* ``naswot`` (Mellor et al., arXiv 2006.04647, "jacob_cov"'s successor): each image's binary
  code is the sign pattern (> 0) of the input of every activation layer (swish / relu);
  ``K[i, j]`` counts the units where images i and j agree; score = ``log|det K|`` (slogdet).
* ``params`` and ``macs``: the parameter and multiply-add counts of the candidate at the
  variant (:func:`effscale.model.cost.cost`), the plain baselines every proxy should beat (ZiCo).

Weights are initialized after ``keras.utils.set_random_seed(seed)``, dropout and drop-connect
are off, so a score is a function of (genotype, variant, classes, seed, batch).

>>> parse_prescreen("synflow:20")
('synflow', 20)
>>> from effscale.model.cost import cost
>>> score("tiny", "macs", None, "w=0.5,d=1,r=16", classes=10) == cost("tiny", "w=0.5,d=1,r=16", 10).multiply_adds
True
"""

from __future__ import annotations

import math
import re

import numpy as np

from effscale.common.errors import UserError
from effscale.model.scaling import variant_spec
from effscale.model.zoo import load_genotype
from effscale.model.variants import resolve_variant

PROXIES = ("synflow", "grad_norm", "naswot", "params", "macs")
_NEEDS_BATCH = ("grad_norm", "naswot")


def parse_prescreen(text) -> tuple[str, int]:
    """``"PROXY:N"`` -> ``(proxy, n)``: score N candidates with PROXY, train the best. ``reward``
    is the cost-aware score (:class:`effscale.search.oracles.prescreen.PredictedReward`), not a proxy.

    >>> parse_prescreen(" naswot:5 ")
    ('naswot', 5)
    >>> parse_prescreen("flops:5")
    Traceback (most recent call last):
    ...
    effscale.common.errors.UserError: prescreen 'flops:5': unknown proxy 'flops', expected one of synflow, grad_norm, naswot, params, macs or reward (predicted accuracy with the exact cost)
    >>> parse_prescreen("synflow")
    Traceback (most recent call last):
    ...
    effscale.common.errors.UserError: prescreen 'synflow': expected PROXY:N, e.g. synflow:20 (N candidates scored per trial)
    """
    from effscale.common.checks import shorten

    match = re.fullmatch(r"\s*([A-Za-z_]+)\s*:\s*([0-9]+)\s*", str(text), re.ASCII)
    if not match:
        raise UserError(f"prescreen {shorten(text)}: expected PROXY:N, e.g. synflow:20 (N candidates scored per trial)")
    proxy = match.group(1).lower()
    if proxy not in PROXIES + ("reward",):
        raise UserError(f"prescreen {shorten(text)}: unknown proxy {shorten(proxy)}, expected one of "
                        f"{', '.join(PROXIES)} or reward (predicted accuracy with the exact cost)")
    digits = match.group(2).lstrip("0") or "0"
    if len(digits) > 5 or not 1 <= int(digits) <= 10_000:  # int() of 5000 digits would raise
        raise UserError(f"prescreen {shorten(text)}: N must be in 1..10000, got {shorten(digits)}")
    n = int(digits)
    return proxy, n


def first_batch(data, seed: int = 0):
    """One fixed minibatch ``(images, labels)`` (numpy) of a :class:`~effscale.data.pipeline.DataSplits`:
    the first batch of its validation split, which has a fixed order and no augmentation (the
    training split reshuffles on every pass, so its "first" batch depends on history).
    ``seed`` > 0 takes a seeded permutation of that batch's images instead of their order.

    >>> from effscale.data import DataSpec, load_data
    >>> images, labels = first_batch(load_data(DataSpec("digits", resolution=8), batch_size=4))
    >>> images.shape, labels.shape
    ((4, 8, 8, 3), (4,))
    """
    images, labels = next(iter(data.validation))
    images, labels = np.asarray(images), np.asarray(labels)
    if seed:
        order = np.random.default_rng(seed).permutation(len(labels))
        images, labels = images[order], labels[order]
    return images, labels


def score(genotype, proxy: str, batch, variant, classes: int, seed: int = 0) -> float:
    """The ``proxy`` score of ``genotype`` built at ``variant`` for ``classes`` classes, on
    ``batch = (images, labels)`` (pixels in [0, 255], shape ``(B, R, R, 3)``; ``synflow``,
    ``params`` and ``macs`` ignore the values). Higher = predicted better."""
    if proxy not in PROXIES:
        raise UserError(f"unknown proxy {proxy!r}: expected one of {', '.join(PROXIES)}")
    if proxy in ("params", "macs"):
        from effscale.model.cost import cost

        counted = cost(genotype, variant, classes=classes)
        return float(counted.parameters if proxy == "params" else counted.multiply_adds)
    if proxy == "synflow":
        return _synflow(genotype, variant, classes, seed)
    images, labels = _check_batch(batch)
    resolution = resolve_variant(variant, load_genotype(genotype)).resolution
    if images.shape[1:3] != (resolution, resolution):
        raise UserError(f"batch images are {images.shape[1]}x{images.shape[2]} px but variant {variant_spec(variant)} "
                        f"builds a {resolution} px model")
    model = _build(genotype, variant, classes, seed)
    if proxy == "grad_norm":
        return _grad_norm(model, images, labels)
    return _naswot(model, images)


def score_many(genotypes, proxy: str, batch, variant, classes: int, seed: int = 0) -> list[float]:
    """:func:`score` of each genotype, same batch, variant and seed.

    >>> tiny, mobilenet = score_many(["tiny", "mobilenet-v2"], "params", None, "w=0.5,d=1,r=16", classes=10)
    >>> tiny < mobilenet
    True
    """
    return [score(g, proxy, batch, variant, classes, seed) for g in genotypes]


def make_score_fn(space, proxy: str, data, variant, seed: int = 0):
    """``score_fn(list of values dicts) -> list of scores`` for the prescreening oracles:
    each values dict is turned into a genotype of ``space`` and scored on :func:`first_batch`
    of ``data`` (a DataSplits, or a function returning one, called on first use).

    >>> from types import SimpleNamespace
    >>> from effscale.search.space import SearchSpace
    >>> space = SearchSpace("tiny", open=("kernel",))
    >>> score_fn = make_score_fn(space, "params", SimpleNamespace(num_classes=10), "w=1,d=1,r=32")
    >>> k5, k3 = score_fn([space.default_values(), {**space.default_values(), "stage3/kernel": 3}])
    >>> k5 > k3
    True
    """
    cache: dict = {}

    def score_fn(values_list):
        if "batch" not in cache:
            splits = data() if callable(data) else data
            cache["classes"] = splits.num_classes
            cache["batch"] = first_batch(splits) if proxy in _NEEDS_BATCH else None
        genotypes = [space.to_genotype(values) for values in values_list]
        return score_many(genotypes, proxy, cache["batch"], variant, cache["classes"], seed)

    return score_fn


# -- the proxies -------------------------------------------------------------------------------
def _check_batch(batch):
    if batch is None or len(batch) != 2:
        raise UserError("a proxy that looks at data needs batch=(images, labels)")
    images = np.asarray(batch[0], dtype=np.float32)
    labels = np.asarray(batch[1]).astype(np.int32).reshape(-1)
    if images.ndim != 4 or images.shape[0] != labels.shape[0] or images.shape[0] < 2:
        raise UserError(f"batch: expected images (B, R, R, C) with B >= 2 and B labels, got {images.shape} "
                        f"and {labels.shape}")
    return images, labels


def _build(genotype, variant, classes, seed, include_preprocessing: bool = True):
    import keras

    from effscale.model.builder import ModelOptions, build

    keras.utils.set_random_seed(seed)
    options = ModelOptions(dropout=0.0, drop_connect=0.0, include_preprocessing=include_preprocessing)
    return build(genotype, variant, classes=classes, classifier_activation=None, options=options)


def _kernels(model) -> list:
    from keras import layers

    return [layer.kernel for layer in model.layers
            if isinstance(layer, (layers.Conv2D, layers.DepthwiseConv2D, layers.Dense))]


def _synflow(genotype, variant, classes, seed) -> float:
    import keras
    import tensorflow as tf

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float64")
    try:
        model = _build(genotype, variant, classes, seed, include_preprocessing=False)
    finally:
        keras.config.set_dtype_policy(previous)
    for variable in model.weights:
        variable.assign(tf.abs(variable))
    kernels = _kernels(model)
    ones = tf.ones((1, *model.input_shape[1:]), tf.float64)
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(model(ones, training=False))
    grads = tape.gradient(total, kernels)
    value = float(sum(tf.reduce_sum(tf.abs(k * g)) for k, g in zip(kernels, grads) if g is not None))
    return math.log(value) if value > 0 else float("-inf")


def _grad_norm(model, images, labels) -> float:
    import keras
    import tensorflow as tf

    kernels = _kernels(model)
    with tf.GradientTape() as tape:
        logits = model(images, training=True)
        loss = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        loss = tf.reduce_mean(loss)
    grads = tape.gradient(loss, kernels)
    return float(sum(tf.norm(g) for g in grads if g is not None))


def _naswot(model, images) -> float:
    import keras

    activations = [layer for layer in model.layers if isinstance(layer, keras.layers.Activation)]
    if not activations:
        raise UserError("naswot needs activation layers, the model has none")
    probe = keras.Model(model.input, [layer.input for layer in activations])
    outputs = probe(images, training=True)
    codes = np.concatenate([np.asarray(o).reshape(len(images), -1) > 0 for o in outputs], axis=1)
    codes = codes.astype(np.float64)
    agree = codes @ codes.T + (1.0 - codes) @ (1.0 - codes).T
    _, logdet = np.linalg.slogdet(agree)
    return float(logdet)


def make_prescreen(text, space, variant, load, seed: int, reward=None, cost_of=None):
    """``(score_fn, n)`` for :func:`~effscale.search.registry.make_oracle` from ``"PROXY:N"``
    (None for None): zero-cost scores on the first validation batch of ``load()``, called on the
    first prescreen, or for ``reward:N`` the predicted reward of ``reward`` with the exact cost
    ``cost_of(values)`` (:class:`~effscale.search.oracles.prescreen.PredictedReward`)."""
    if not text:
        return None
    proxy, n = parse_prescreen(text)
    if proxy == "reward":
        from effscale.search.oracles.prescreen import PredictedReward

        return PredictedReward(space.hyperparameters(), cost_of, reward), n
    return make_score_fn(space, proxy, load, variant, seed=seed), n
