"""Fine-tune a family member on new data in two phases, from ImageNet or any other weights.

:class:`FineTuneConfig` is the procedure as one typed, serializable value:

* phase 1 trains a new classifier head (``predictions``) on a frozen backbone
  (``head_epochs`` at ``head_learning_rate``);
* phase 2 unfreezes the top ``unfreeze`` stages of blocks (layer-name prefixes ``block7``,
  ``block6``, ... for EfficientNet-B0) and the head convolution (``top_conv``), keeps every
  BatchNormalization layer frozen, i.e. in inference mode with its moving statistics fixed,
  and trains ``epochs`` more at the lower ``learning_rate``. ``unfreeze=-1`` unfreezes the
  whole backbone. ``gradual=True`` unfreezes one more stage per epoch, from the top, until
  ``unfreeze`` stages are trainable;
* the input resolution is the variant's unless ``resolution`` is given.

:func:`finetune` runs both phases and writes ``model.keras`` and ``finetune.json`` (config,
weight-transfer report, accuracy after each phase, per-epoch history) into ``out_dir``, only
after everything has run; bad input raises :class:`~effscale.common.errors.UserError` before
anything is written.

>>> config = FineTuneConfig(unfreeze=3, learning_rate=1e-5)
>>> FineTuneConfig.from_dict(config.to_dict()) == config
True
>>> FineTuneConfig(unfreeze=-2)
Traceback (most recent call last):
...
effscale.common.errors.UserError: fine-tune unfreeze must be -1 (all) or a number of stages >= 0, got -2
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass

from effscale.common.errors import UserError
from effscale.training.evaluate import HISTORY_NAMES, evaluate_dataset, split_metrics
from effscale.common.io import JsonSettings, atomic_path
from effscale.common.migrations import read_state, write_state

MODEL_FILE = "model.keras"
RECORD_FILE = "finetune.json"
_STAGE = re.compile(r"^block(\d+)[a-z]+_")
HEAD_LAYERS = ("predictions",)


@dataclass(frozen=True)
class FineTuneConfig(JsonSettings):
    """How to fine-tune (see the module docstring). ``steps_per_epoch`` and
    ``validation_steps`` cap an epoch (None: the whole split), e.g. for a smoke run."""

    _json_name = "fine-tune config"

    head_epochs: int = 3
    head_learning_rate: float = 1e-3
    epochs: int = 3                         # phase 2
    learning_rate: float = 1e-4             # phase 2: lower, the backbone is being adjusted
    unfreeze: int = 2                       # top stages to unfreeze in phase 2; -1: all
    gradual: bool = False                   # one more stage per phase-2 epoch
    resolution: int | None = None           # None: the variant's
    batch_size: int = 32
    dropout: float = 0.2
    label_smoothing: float = 0.1
    augment: bool = True
    validation_fraction: float = 0.2
    steps_per_epoch: int | None = None
    validation_steps: int | None = None
    eager: bool = False                     # run eagerly, no graph tracing: faster for a few smoke steps
    seed: int = 0

    def __post_init__(self):
        def check(condition, message):
            if not condition:
                raise UserError(f"fine-tune {message}")

        def integer(value):
            return isinstance(value, int) and not isinstance(value, bool)

        check(integer(self.head_epochs) and self.head_epochs >= 0, f"head_epochs must be >= 0, got {self.head_epochs!r}")
        check(integer(self.epochs) and self.epochs >= 0, f"epochs must be >= 0, got {self.epochs!r}")
        check(self.head_epochs + self.epochs >= 1, "needs at least one epoch in one of the phases")
        check(integer(self.unfreeze) and self.unfreeze >= -1,
              f"unfreeze must be -1 (all) or a number of stages >= 0, got {self.unfreeze!r}")
        check(self.head_learning_rate > 0 and self.learning_rate > 0, "learning rates must be positive")
        check(self.resolution is None or (integer(self.resolution) and 8 <= self.resolution <= 4096),
              f"resolution must be None or an integer in 8..4096, got {self.resolution!r}")
        check(integer(self.batch_size) and self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size!r}")
        check(0 <= self.dropout < 1 and 0 <= self.label_smoothing < 1, "dropout and label_smoothing must be in [0, 1)")
        check(0 < self.validation_fraction < 1, f"validation_fraction must be in (0, 1), got {self.validation_fraction!r}")
        for name in ("steps_per_epoch", "validation_steps"):
            value = getattr(self, name)
            check(value is None or (integer(value) and value >= 1), f"{name} must be None or >= 1, got {value!r}")


# -- freezing -------------------------------------------------------------------------------

def stage_of(layer_name: str) -> int | None:
    """The stage number of a block layer (``block6b_dwconv`` -> 6), else None.

    >>> stage_of("block6b_dwconv"), stage_of("block12aa_project_bn"), stage_of("top_conv")
    (6, 12, None)
    """
    match = _STAGE.match(layer_name)
    return int(match.group(1)) if match else None


def unfrozen_prefixes(model, unfreeze: int) -> list[str]:
    """The layer-name prefixes phase 2 trains: the top ``unfreeze`` stages and ``top_``
    (``-1``: every stage and ``stem_`` too).

    >>> import effscale
    >>> unfrozen_prefixes(effscale.build("tiny", "w=0.25,d=0.5,r=32", classes=2), 2)
    ['block3', 'block4', 'top_']
    """
    stages = sorted({s for s in (stage_of(layer.name) for layer in model.layers) if s is not None})
    if unfreeze == -1:
        return ["stem_"] + [f"block{s}" for s in stages] + ["top_"]
    chosen = stages[len(stages) - unfreeze:] if unfreeze else []
    return [f"block{s}" for s in chosen] + ["top_"]


def set_trainable(model, prefixes: list[str]) -> list[str]:
    """Freeze ``model`` except the head and the layers under ``prefixes``; BatchNormalization
    stays frozen everywhere (Keras runs a frozen BN layer in inference mode). Returns the
    names of the trainable layers that hold weights."""
    import keras

    stages = {int(p[len("block"):]) for p in prefixes if p.startswith("block")}
    others = tuple(p for p in prefixes if not p.startswith("block"))
    model.trainable = True
    trainable = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            on = False
        elif layer.name in HEAD_LAYERS:
            on = True
        else:
            on = stage_of(layer.name) in stages or (bool(others) and layer.name.startswith(others))
        layer.trainable = on
        if on and layer.weights:
            trainable.append(layer.name)
    return trainable


# -- the procedure --------------------------------------------------------------------------

def _resolve_base(base, variant, weights):
    """(genotype, variant, weights, loaded model or None) of what the user named."""
    import keras

    from effscale.model.zoo import load_genotype
    from effscale.model.variants import resolve_variant

    if isinstance(base, keras.Model):
        return None, None, weights, base
    text = os.fspath(base)
    model_path = None
    if os.path.isdir(text):
        model_path = os.path.join(text, MODEL_FILE)
        if not os.path.isfile(model_path):
            raise UserError(f"{text!r} is a folder without {MODEL_FILE}: expected a genotype or a trained model")
    elif text.endswith(".keras"):
        if not os.path.isfile(text):
            raise UserError(f"model file {text!r} does not exist")
        model_path = text
    if model_path is None:
        genotype = load_genotype(text)
        return genotype, resolve_variant(variant or "b0", genotype), weights, None
    folder = os.path.dirname(os.path.abspath(model_path))
    for record_name in (RECORD_FILE, "results.json"):
        record_path = os.path.join(folder, record_name)
        if os.path.isfile(record_path):
            record = read_state(record_path, "fine-tuning" if record_name == RECORD_FILE else "training results")
            if "genotype" in record and "variant" in record:
                genotype = load_genotype(record["genotype"])
                return genotype, _variant_from_record(record["variant"], genotype), weights or model_path, None
    from effscale.model.keras_file import load_keras_model

    model = load_keras_model(model_path)
    return None, None, weights, model


def _variant_from_record(data, genotype):
    from effscale.model.scaling import Variant
    from effscale.model.variants import resolve_variant

    if isinstance(data, dict):
        try:
            return Variant.from_dict(data)
        except Exception:
            return Variant.explicit(data["width"], data["depth"], data["resolution"])
    return resolve_variant(str(data), genotype)


def _replace_head(model, classes, dropout):
    import keras

    try:
        features = model.get_layer("avg_pool").output
    except ValueError:
        raise UserError("the model has no 'avg_pool' layer to put a new head on (expected an effscale or "
                        "keras.applications EfficientNet-style model)") from None
    x = keras.layers.Dropout(dropout, name="top_dropout_new")(features) if dropout else features
    outputs = keras.layers.Dense(classes, activation="softmax", name="predictions_new")(x)
    head = keras.Model(model.inputs, outputs, name=model.name)
    return _rename_head(head)


def _rename_head(model):
    """Give the new head the canonical name 'predictions' (clone with renamed layers)."""
    import keras

    config = model.get_config()
    rename = {"predictions_new": "predictions", "top_dropout_new": "top_dropout"}
    taken = {layer["config"]["name"] for layer in config["layers"]}
    if "predictions" in taken or "top_dropout" in taken:  # the old head is still in the graph
        return model
    text = json.dumps(config)
    for old, new in rename.items():
        text = text.replace(f'"{old}"', f'"{new}"')
    clone = keras.Model.from_config(json.loads(text))
    clone.set_weights(model.get_weights())
    return clone


def _compile(model, learning_rate, config):
    import keras

    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
                  metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")], jit_compile=False,
                  run_eagerly=config.eager)


def _fit(model, splits, config, epochs, initial_epoch, history, phase, verbose):
    import tensorflow as tf

    classes = splits.num_classes
    one_hot = lambda ds: ds.map(lambda x, y: (x, tf.one_hot(y, classes)))  # noqa: E731
    train = one_hot(splits.train).repeat()
    steps = config.steps_per_epoch or max(1, -(-splits.train_size // splits.batch_size))
    validation = one_hot(splits.validation)
    start = time.perf_counter()
    result = model.fit(train, epochs=initial_epoch + epochs, initial_epoch=initial_epoch, steps_per_epoch=steps,
                       validation_data=validation, validation_steps=config.validation_steps, verbose=verbose,
                       shuffle=False)
    seconds = time.perf_counter() - start
    logs = result.history
    for i in range(len(logs.get("loss", []))):
        entry = {"phase": phase, "epoch": initial_epoch + i + 1}
        entry.update({HISTORY_NAMES.get(k, k): round(float(v[i]), 6) for k, v in logs.items()})
        history.append(entry)
    return seconds


def _last_validation(history) -> dict:
    """The validation metrics Keras computed at the end of the last epoch."""
    last = history[-1]
    return {"top1": last["validation_accuracy"], "loss": last["validation_loss"]}


def finetune(base, variant: str | None = None, data: "DataSpec | str" = "digits",
             config: FineTuneConfig | dict | None = None, weights=None, out_dir: str | None = None, *,
             verbose: int = 0) -> dict:
    """Fine-tune ``base`` on ``data`` in two phases and return the record (also written to
    ``out_dir/finetune.json`` beside ``out_dir/model.keras`` when ``out_dir`` is given).

    ``base`` is a genotype (registered name, string or JSON file) built at ``variant``, a
    ``.keras`` model or a training / fine-tuning output folder (its recorded genotype and
    variant are rebuilt and its weights loaded), or a ``keras.Model`` (its head is replaced).
    ``weights`` is anything :func:`effscale.load_weights` takes (``"imagenet:b0"``, a file);
    layers that do not match (the old classifier) keep their fresh initialization and the
    record's ``transfer`` says which. ``data`` is a :class:`~effscale.data.spec.DataSpec` (its
resolution is replaced by the model's) or a source name (``digits``, ``tfds:NAME``, an image
folder, ...), split with the config's ``validation_fraction`` and ``seed``.

    >>> record = finetune("tiny", "w=0.25,d=0.25,r=16", "digits", FineTuneConfig(head_epochs=1, epochs=1,
    ...                   steps_per_epoch=2, validation_steps=1, batch_size=8, augment=False, eager=True))
    >>> [phase["name"] for phase in record["phases"]], record["unfrozen_prefixes"]
    (['head', 'finetune'], ['block3', 'block4', 'top_'])
    >>> record["_model"].output_shape  # the fine-tuned keras.Model (not written to JSON)
    (None, 10)
    """
    import keras

    from effscale.model.builder import ModelOptions, build
    from effscale.data.pipeline import DataSpec, load_data
    from effscale.model.weights import load_weights, refresh_normalization

    if isinstance(config, dict):
        config = FineTuneConfig.from_dict(config)
    config = config or FineTuneConfig()
    if out_dir is not None:
        out_dir = os.path.abspath(os.fspath(out_dir))
        if os.path.isfile(os.path.join(out_dir, RECORD_FILE)):
            raise UserError(f"{out_dir!r} already holds a fine-tuned model; use a new --out folder")
        parent = os.path.dirname(out_dir)
        if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
            raise UserError(f"--out {out_dir!r}: folder {parent!r} does not exist or is not writable")
    genotype, variant_value, weights, loaded = _resolve_base(base, variant, weights)
    if loaded is not None:
        resolution = int(loaded.input_shape[1])
        if config.resolution not in (None, resolution):
            raise UserError(f"the model takes {resolution} px inputs; resolution {config.resolution} needs its "
                            "genotype (fine-tune a training output folder or a genotype instead)")
    else:
        resolution = config.resolution or variant_value.resolution
    spec = data if isinstance(data, DataSpec) else DataSpec.of(data).replace(
        validation_fraction=config.validation_fraction, seed=config.seed)
    splits = load_data(spec.replace(resolution=resolution), batch_size=config.batch_size, augment=config.augment)

    keras.utils.set_random_seed(config.seed)
    if loaded is not None:
        model = _replace_head(loaded, splits.num_classes, config.dropout)
        report = None
    else:
        model = build(genotype, variant_value, classes=splits.num_classes, input_shape=(resolution, resolution, 3),
                      options=ModelOptions(dropout=config.dropout, bn_momentum=0.9))
        report = load_weights(model, weights) if weights is not None else None
    refresh_normalization(model)

    history, phases = [], []
    start = time.perf_counter()
    if config.head_epochs:
        trainable = set_trainable(model, [])
        _compile(model, config.head_learning_rate, config)
        seconds = _fit(model, splits, config, config.head_epochs, 0, history, "head", verbose)
        phases.append({"name": "head", "epochs": config.head_epochs, "learning_rate": config.head_learning_rate,
                       "trainable_layers": trainable, "seconds": round(seconds, 3),
                       "validation": _last_validation(history)})
    prefixes = unfrozen_prefixes(model, config.unfreeze)
    if config.epochs:
        block_prefixes = [p for p in prefixes if p.startswith("block")]
        others = [p for p in prefixes if not p.startswith("block")]
        steps = range(config.epochs) if config.gradual else [None]
        seconds, epoch, schedule = 0.0, config.head_epochs, []
        for step in steps:
            if step is None:
                chosen, epochs = prefixes, config.epochs
            else:
                count = min(len(block_prefixes), step + 1)
                chosen, epochs = others + block_prefixes[len(block_prefixes) - count:], 1
            trainable = set_trainable(model, chosen)
            schedule.append({"epochs": epochs, "prefixes": chosen})
            _compile(model, config.learning_rate, config)
            seconds += _fit(model, splits, config, epochs, epoch, history, "finetune", verbose)
            epoch += epochs
        phases.append({"name": "finetune", "epochs": config.epochs, "learning_rate": config.learning_rate,
                       "unfrozen_prefixes": prefixes, "schedule": schedule, "trainable_layers": trainable,
                       "seconds": round(seconds, 3),
                       "validation": _last_validation(history)})
    model.trainable = True
    record = {
        "genotype": genotype.encode() if genotype is not None else None,
        "variant": variant_value.to_dict() if variant_value is not None else None,
        "base": base if isinstance(base, str) else getattr(base, "name", None),
        "weights": os.fspath(weights) if isinstance(weights, (str, os.PathLike)) else (
            getattr(weights, "name", None)),
        "transfer": report.to_dict() if report is not None else None,
        "data": dict(splits.describe(), data_dir=spec.data_dir, validation_fraction=spec.validation_fraction),
        "config": config.to_dict(), "resolution": resolution, "unfrozen_prefixes": prefixes,
        "phases": phases, "history": history, "validation_top1": phases[-1]["validation"]["top1"],
        **split_metrics("test", evaluate_dataset(model, splits.test, splits.num_classes)),
        "params": int(model.count_params()), "seconds": round(time.perf_counter() - start, 3),
        "model": MODEL_FILE,
    }
    if out_dir is not None:
        os.makedirs(out_dir, exist_ok=True)
        with atomic_path(os.path.join(out_dir, MODEL_FILE)) as temporary:
            model.save(temporary)
        write_state(os.path.join(out_dir, RECORD_FILE), record)
    record["_model"] = model
    return record


def summary(record: dict) -> str:
    """Validation top-1 after each phase, then the test split's top-1 of the final model."""
    parts = [f"{p['name']} {p['validation']['top1']:.3f}" for p in record["phases"]]
    return "validation top-1: " + ", ".join(parts) + f"; test top-1 {record['test_top1']:.3f}"


def recipe_main(argv=None, *, dataset: str, config: FineTuneConfig, genotype: str = "efficientnet-b0",
                variant: str = "b0", weights: str | None = "imagenet:b0", out: str = "runs/finetune",
                description: str = "") -> dict:
    """The command line every script in ``recipes/`` shares: the recipe's settings, with
    ``--data-dir``, ``--download``, ``--weights FILE|imagenet:bN|none``, ``--variant``,
    ``--genotype``, ``--dataset``, ``--resolution``, ``--batch-size``, ``--epochs``,
    ``--head-epochs``, ``--unfreeze``, ``--learning-rate``, ``--head-learning-rate``,
    ``--no-augment``, ``--smoke`` (one step per phase) and ``--out``.

    >>> recipe_main(["--unfreeze", "x"], dataset="digits", config=FineTuneConfig())
    Traceback (most recent call last):
    ...
    SystemExit: 2
    """
    import argparse
    import sys

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--dataset", default=dataset)
    parser.add_argument("--data-dir", help="tensorflow-datasets data_dir (default: tfds' own)")
    parser.add_argument("--download", action="store_true", help="let tensorflow-datasets download and prepare")
    parser.add_argument("--genotype", default=genotype)
    parser.add_argument("--variant", default=variant)
    parser.add_argument("--weights", default=weights or "none", help="FILE, imagenet:bN, or none")
    parser.add_argument("--resolution", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--head-epochs", type=int)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--unfreeze", type=int)
    parser.add_argument("--learning-rate", type=float, help="phase 2")
    parser.add_argument("--head-learning-rate", type=float, help="phase 1")
    parser.add_argument("--no-augment", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="one step per phase, one validation batch")
    parser.add_argument("--out", default=out)
    parser.add_argument("--verbose", type=int, default=1)
    args = parser.parse_args(argv)
    changes = {k: v for k, v in {"resolution": args.resolution, "batch_size": args.batch_size,
                                 "head_epochs": args.head_epochs, "epochs": args.epochs,
                                 "unfreeze": args.unfreeze, "learning_rate": args.learning_rate,
                                 "head_learning_rate": args.head_learning_rate}.items() if v is not None}
    if args.no_augment:
        changes["augment"] = False
    if args.smoke:
        changes.update(head_epochs=1, epochs=1, steps_per_epoch=1, validation_steps=1, eager=True)
    try:
        from effscale.data.spec import DataSpec

        data = DataSpec(args.dataset, data_dir=args.data_dir, download=args.download,
                        validation_fraction=config.validation_fraction, seed=config.seed)
        record = finetune(args.genotype, args.variant, data, config.replace(**changes),
                          weights=None if args.weights == "none" else args.weights, out_dir=args.out,
                          verbose=args.verbose)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"{args.out}: {summary(record)}")
    return record
