"""Build a Keras model from a genotype and a variant.

>>> import effscale
>>> model = effscale.build("tiny", variant="w=0.5,d=0.5,r=32", classes=10)
>>> model.output_shape
(None, 10)
>>> model.get_layer("block2a_expand_conv").name
'block2a_expand_conv'
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from effscale.model.conventions import CONVENTIONS
from effscale.model.cost import plan_cost
from effscale.common.errors import UserError
from effscale.model.genotype import Genotype
from effscale.model.limits import check_cost
from effscale.model.zoo import load_genotype
from effscale.model.plan import DEFAULT_DROP_CONNECT, network_plan
from effscale.model.scaling import Variant
from effscale.model.variants import resolve_variant

# ImageNet statistics of inputs scaled to [0, 1] (keras.applications EfficientNet).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STDDEV = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelOptions:
    """What :func:`build` takes beyond keras.applications' arguments: ``dropout`` before the
    classifier (default: the variant's), ``drop_connect`` (stochastic depth, the last block's
    rate), ``bn_momentum`` (default: keras.applications' for the genotype's convention, 0.99 for
    V1 and 0.9 for V2; 0.9 suits short runs, the EfficientNet recipe's 0.99 assumes ~350
    epochs), ``bn_epsilon``, ``fused_batch_norm`` (batch norm through TensorFlow's fused kernel in
    training, :mod:`effscale.model.fused_norm`: the same variables and inference, fewer ops to trace;
    what search trials use), ``include_preprocessing`` (the rescaling and normalization layers
    inside the model) and the model's ``name``. Validated by :func:`build`.

    >>> build("tiny", "w=0.25,d=0.5,r=16", classes=4, options=ModelOptions(bn_momentum=0.9)).get_layer(
    ...     "stem_bn").momentum
    0.9
    """

    dropout: float | None = None
    drop_connect: float = DEFAULT_DROP_CONNECT
    bn_momentum: float | None = None
    bn_epsilon: float = 1e-3
    fused_batch_norm: bool = False
    include_preprocessing: bool = True
    name: str | None = None


def build(
    genotype: "Genotype | str" = "efficientnet-b0",
    variant: "Variant | str" = "b0",
    classes: int = 1000,
    include_top: bool = True,
    input_shape: tuple | None = None,
    pooling: str | None = None,
    classifier_activation: str | None = "softmax",
    weights: str | None = None,
    input_tensor=None,
    options: ModelOptions | None = None,
):
    """A functional ``keras.Model`` of ``genotype`` scaled by ``variant``.

    ``genotype`` is a Genotype, a registered name, a genotype string or a JSON file path;
    ``variant`` any spelling :func:`effscale.model.variants.resolve_variant` accepts. Inputs are
    pixels in [0, 255]: the model rescales and normalizes inside, as keras.applications
    EfficientNet and EfficientNetV2 do (the genotype's ``inputs``: ImageNet-normalized, or
    [-1, 1] for EfficientNetV2-S/M/L). The arguments are keras.applications' EfficientNet ones;
    ``options`` (:class:`ModelOptions`) holds effscale's own (dropout, drop-connect, batch norm,
    preprocessing, name).

    ``weights`` and ``input_tensor`` work as in keras.applications: ``None`` (random
    initialization), ``"imagenet"`` (keras' cached ImageNet file for EfficientNet-B0..B7, read
    from ``~/.keras/models/``; effscale never downloads, and a missing file is one
    :class:`~effscale.common.errors.UserError` saying where to put it) or the path of any file
    :func:`effscale.load_weights` reads (``.weights.h5``, ``.keras``, legacy ``.h5``); every
    layer must match. ``input_tensor`` is a Keras tensor (e.g. ``keras.Input``) to build on.

    >>> m = build("efficientnet-b0", "b0")
    >>> m.count_params()
    5330571
    >>> import keras
    >>> image = keras.Input((32, 32, 3))
    >>> build("tiny", "w=0.5,d=0.5,r=32", classes=4, input_tensor=image).inputs[0] is image
    True
    """
    options = options or ModelOptions()
    if not isinstance(options, ModelOptions):
        raise UserError(f"options must be a ModelOptions, got {options!r}")
    if not isinstance(options.fused_batch_norm, bool):
        raise UserError(f"fused_batch_norm must be True or False, got {options.fused_batch_norm!r}")
    dropout, drop_connect, bn_epsilon = options.dropout, options.drop_connect, options.bn_epsilon
    include_preprocessing, name = options.include_preprocessing, options.name
    genotype = load_genotype(genotype)
    variant = resolve_variant(variant, genotype)
    convention = CONVENTIONS[genotype.convention]
    bn_momentum = convention.bn_momentum if options.bn_momentum is None else options.bn_momentum
    _validate(classes, include_top, pooling, dropout, drop_connect, bn_momentum, bn_epsilon)
    imagenet_source = _imagenet_source(weights, genotype, variant, classes, include_top)
    plan = network_plan(genotype, variant, drop_connect)
    planned = plan_cost(plan, classes, include_top, include_preprocessing)
    check_cost(planned.parameters, planned.multiply_adds, f"{genotype.key} at {variant.name}")

    import keras
    from keras import layers

    from effscale.model.block_types import build_block
    from effscale.model.blocks import DENSE_INIT, conv_bn_act

    if input_shape is None and input_tensor is not None:
        input_shape = tuple(input_tensor.shape[1:])
    if input_shape is None:
        input_shape = (plan.resolution, plan.resolution, 3)
    input_shape = tuple(input_shape)
    if len(input_shape) != 3:
        raise UserError(f"input_shape must be (height, width, channels), got {input_shape}")
    dropout = variant.dropout if dropout is None else dropout
    bn = {"momentum": bn_momentum, "epsilon": bn_epsilon, **({"fused": True} if options.fused_batch_norm else {})}

    if input_tensor is None:
        inputs = layers.Input(shape=input_shape)
    elif keras.backend.is_keras_tensor(input_tensor):
        inputs = input_tensor
    else:
        inputs = layers.Input(tensor=input_tensor, shape=input_shape)
    x = inputs
    normalization = None
    if include_preprocessing:
        x, normalization = _preprocess(x, genotype, input_shape[-1])
    x = conv_bn_act(x, plan.stem_filters, 3, 2, "stem_", bn, plan.activation,
                    explicit_padding=convention.explicit_padding)
    for block in plan.blocks:
        x = build_block(x, block, bn)
    x = conv_bn_act(x, plan.head_filters, 1, 1, "top_", bn, plan.activation)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout > 0:
            x = layers.Dropout(dropout, name="top_dropout")(x)
        x = layers.Dense(classes, activation=classifier_activation, kernel_initializer=DENSE_INIT,
                         bias_initializer="zeros", name="predictions")(x)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(name="max_pool")(x)
    if input_tensor is not None:
        inputs = keras.utils.get_source_inputs(input_tensor)
    model = keras.Model(inputs, x, name=name or f"effscale_{variant.name}".replace("-", "_").replace(".", "_"))
    if normalization is not None and input_shape[-1] == 3:
        normalization.set_weights([np.array(IMAGENET_MEAN, "float32"),
                                   np.square(np.array(IMAGENET_STDDEV, "float32")),
                                   np.array(0, "int64")])
        # set_weights leaves the layer's cached statistics stale (a reloaded model would
        # normalize differently from this one); finalize_state refreshes them.
        normalization.finalize_state()
    if weights is not None:
        from effscale.model.weights import load_weights

        load_weights(model, imagenet_source or weights, exact=True)
    return model


def _preprocess(x, genotype: Genotype, channels: int):
    """The input layers of the genotype's keras.applications family; returns the V1
    Normalization layer whose statistics the caller sets once the model exists."""
    from keras import layers

    if genotype.inputs == "signed" or (genotype.convention == "v2" and channels != 3):
        # keras.applications EfficientNetV2 scales to [-1, 1] for S/M/L and for any input
        # that is not RGB.
        return layers.Rescaling(1.0 / 128.0, offset=-1.0, name="rescaling")(x), None
    x = layers.Rescaling(1.0 / 255.0, name="rescaling")(x)
    if genotype.convention == "v2":  # the statistics are constants, not weights
        normalization = layers.Normalization(axis=-1, mean=list(IMAGENET_MEAN),
                                             variance=[s * s for s in IMAGENET_STDDEV], name="normalization")
        return normalization(x), None
    normalization = layers.Normalization(axis=-1, name="normalization")
    return normalization(x), normalization


def _imagenet_source(weights, genotype: Genotype, variant: Variant, classes: int, include_top: bool) -> str | None:
    """The cached ImageNet file for ``weights="imagenet"``; every check made before anything is built."""
    if weights is None:
        return None
    if not isinstance(weights, (str, os.PathLike)):
        raise UserError(f"weights must be None, 'imagenet' or a file path, got {weights!r}")
    if weights != "imagenet":
        if not os.path.exists(weights):
            raise UserError(f"weights file {os.fspath(weights)!r} does not exist")
        return None
    from effscale.model.zoo import get_genotype

    if genotype != get_genotype("efficientnet-b0") or variant.name not in {f"b{i}" for i in range(8)}:
        raise UserError("weights='imagenet' exists only for genotype 'efficientnet-b0' with a variant b0..b7, "
                        f"not {variant.name!r} of this genotype")
    if include_top and classes != 1000:
        raise UserError(f"weights='imagenet' with include_top=True needs classes=1000, got {classes}")
    from effscale.model.weights import imagenet_weights_path

    return imagenet_weights_path(variant.name, include_top=include_top, strict=True)


def _validate(classes, include_top, pooling, dropout, drop_connect, bn_momentum, bn_epsilon) -> None:
    if include_top and not (isinstance(classes, int) and classes >= 1):
        raise UserError(f"classes must be a positive integer, got {classes!r}")
    if pooling not in (None, "avg", "max"):
        raise UserError(f"pooling must be None, 'avg' or 'max', got {pooling!r}")
    if dropout is not None and not 0 <= dropout < 1:
        raise UserError(f"dropout must be in [0, 1), got {dropout}")
    if not 0 <= drop_connect < 1:
        raise UserError(f"drop_connect must be in [0, 1), got {drop_connect}")
    if not 0 < bn_momentum < 1:
        raise UserError(f"bn_momentum must be in (0, 1), got {bn_momentum}")
    if not bn_epsilon > 0:
        raise UserError(f"bn_epsilon must be positive, got {bn_epsilon}")
