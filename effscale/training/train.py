"""Train one variant with tf.distribute, resumably, and write its results record.

:func:`train_variant` trains a genotype at a variant on a dataset (see :mod:`effscale.data.pipeline`)
with a :class:`~effscale.training.recipe.Recipe` under a strategy (see :mod:`effscale.training.strategy`), and
writes into ``out_dir``:

* ``checkpoint/``: after every epoch, the weights and optimizer state
  (``epoch-NNNN.weights.h5``) and ``state.json`` (epochs done, history, time spent), each
  written atomically, by the chief only (see :mod:`effscale.training.checkpoint`). Rerunning the same
  call after a crash, SIGKILL or Ctrl-C resumes at the epoch after the newest intact backup and
  records that in ``results.json`` (``resumed_from_epochs``);
* ``model.keras``: the trained model, for inference (no optimizer);
* ``results.json``: ``test_top1`` / ``_top5`` / ``_loss`` (the test split, selected on by nothing),
  the same on validation, parameters, multiply-adds, latency, training images/s, epochs, wall
  time, history (``train_loss``, ``validation_accuracy``, ...), strategy, recipe, splits.

With ``Recipe(progressive=...)`` (:mod:`effscale.training.progressive`) training runs in stages, each
building the model at the stage's image size and dropout and restoring the weights and
optimizer state from the checkpoint of the stage before; every history entry and
``results.json``'s ``progressive`` list record the image size, dropout, RandAugment magnitude
and MixUp alpha each stage actually trained with.

Under the default, mirrored and TPU strategies training is Keras ``fit``. Under
MultiWorkerMirroredStrategy Keras 3 ``fit`` fails (keras-team/keras#20585), so effscale runs its
own distributed loop: ``strategy.run`` of a step that computes the loss over the global batch
and applies the gradients in replica context (the Keras optimizer all-reduces them), with
synchronized BatchNormalization so that every worker holds identical weights after each step.
``Execution(loop="custom")`` picks that loop under any strategy.
"""

from __future__ import annotations

import os
import time

from effscale.training.checkpoint import CHECKPOINT_DIR, STATE_FILE, read_state, restore_checkpoint, save_checkpoint  # noqa: F401
from effscale.common.errors import UserError
from effscale.training.evaluate import HISTORY_NAMES, split_metrics
from effscale.common import migrations
from effscale.common.io import plain_json, read_json
from effscale.common.preflight import check_output_folder

RUN_FILE = "run.json"


# -- the pieces of a run ----------------------------------------------------------------------

def _read_record(path: str, kind: str) -> dict | None:
    """A JSON record, or None when it is missing or damaged (it is written again); one from
    another format version is refused (:mod:`effscale.common.migrations`)."""
    import sys

    if not os.path.isfile(path):
        return None
    try:
        record = read_json(path)
    except (OSError, ValueError):
        print(f"effscale: {path} is damaged; it will be written again", file=sys.stderr)
        return None
    return migrations.current(record, path, kind) if isinstance(record, dict) else None


def _synchronize_batch_norm(model) -> int:
    """Make every BatchNormalization layer compute its statistics over all replicas."""
    import keras

    count = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = True
            count += 1
    return count


def _one_hot(dataset, classes):
    import tensorflow as tf

    return dataset.map(lambda x, y: (x, tf.one_hot(y, classes)), num_parallel_calls=tf.data.AUTOTUNE)


def _export_model(model, path: str) -> None:
    """Save an inference copy of ``model`` (no optimizer, no distribution) atomically."""
    import keras

    from effscale.common.io import atomic_path

    export = keras.Model.from_config(model.get_config())
    export.set_weights([w.numpy() for w in model.weights])
    for layer in export.layers:  # synchronized BN only matters across replicas
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = False
    with atomic_path(path) as temporary:
        export.save(temporary)


class _EpochRecorder:
    """Per-epoch bookkeeping shared by both loops: history, time, images, checkpoint."""

    def __init__(self, model, out_dir, chief, state, images_per_epoch, log):
        self.model, self.out_dir, self.chief, self.log = model, out_dir, chief, log
        self.history = list((state or {}).get("history", []))
        self.train_seconds = float((state or {}).get("train_seconds", 0.0))
        self.timed_images = int((state or {}).get("timed_images", 0))
        self.timed_seconds = float((state or {}).get("timed_seconds", 0.0))
        self.resumed = list((state or {}).get("resumed_from_epochs", []))
        self.images_per_epoch = images_per_epoch
        self.first_epoch_of_process = True
        self.extra: dict = {}  # recorded with every epoch (the progressive stage's settings)
        self.wall_offset = float((state or {}).get("wall_seconds", 0.0))
        self.wall_start = time.perf_counter()

    def end_epoch(self, epoch: int, seconds: float, metrics: dict) -> None:
        self.train_seconds += seconds
        if not self.first_epoch_of_process:  # the first epoch of a process includes tracing
            self.timed_images += self.images_per_epoch
            self.timed_seconds += seconds
        self.first_epoch_of_process = False
        entry = {"epoch": epoch + 1, "seconds": round(seconds, 3)}
        entry.update({HISTORY_NAMES.get(k, k): round(float(v), 6) for k, v in metrics.items()})
        entry.update(self.extra)
        self.history.append(entry)
        if self.chief:
            state = self.state(epoch + 1)
            optimizer = getattr(self.model, "optimizer", None)
            if optimizer is not None:
                state["optimizer_iterations"] = int(optimizer.iterations.numpy())
            save_checkpoint(self.model, self.out_dir, state)

    def state(self, epochs_done: int) -> dict:
        return {"epoch": epochs_done, "history": self.history, "train_seconds": self.train_seconds,
                "timed_images": self.timed_images, "timed_seconds": self.timed_seconds,
                "resumed_from_epochs": self.resumed,
                "wall_seconds": self.wall_offset + time.perf_counter() - self.wall_start}

    def images_per_second(self, fallback_images: int) -> float | None:
        if self.timed_seconds > 0:
            return self.timed_images / self.timed_seconds
        if self.train_seconds > 0:
            return fallback_images / self.train_seconds
        return None


def _fit_loop(model, optimizer, splits, recipe, strategy, epochs, initial_epoch, steps, recorder, verbose, log_dir,
              transform=None, extra_callbacks=()):
    import keras

    with strategy.scope():
        model.compile(optimizer=optimizer,
                      loss=keras.losses.CategoricalCrossentropy(label_smoothing=recipe.label_smoothing),
                      metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")], jit_compile=False)

    class Callback(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            metrics = {"loss": logs.get("loss"), "accuracy": logs.get("accuracy"),
                       "val_loss": logs.get("val_loss"), "val_accuracy": logs.get("val_accuracy")}
            recorder.end_epoch(epoch, time.perf_counter() - self.start,
                               {k: v for k, v in metrics.items() if v is not None})

    callbacks = [Callback(), *extra_callbacks]
    if log_dir:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=log_dir))
    train = _one_hot(splits.train, splits.num_classes).repeat()
    if transform is not None:  # on one-hot batches, e.g. MixUp
        train = train.map(transform)
    validation = _one_hot(splits.validation, splits.num_classes)
    model.fit(train, validation_data=validation, epochs=epochs, initial_epoch=initial_epoch,
              steps_per_epoch=steps, callbacks=callbacks, verbose=verbose, shuffle=False)


def _custom_loop(model, optimizer, splits, recipe, strategy, epochs, initial_epoch, steps, global_batch,
                 recorder, verbose, log_dir, chief):
    import keras
    import tensorflow as tf

    from effscale.training.evaluate import evaluate_dataset

    classes = splits.num_classes
    with strategy.scope():
        loss_object = keras.losses.CategoricalCrossentropy(label_smoothing=recipe.label_smoothing, reduction=None)
        optimizer.build(model.trainable_variables)
    scale_loss = getattr(optimizer, "scale_loss", lambda loss: loss)

    def replica_step(images, labels):
        with tf.GradientTape() as tape:
            probs = tf.cast(model(images, training=True), tf.float32)
            per_example = loss_object(tf.one_hot(labels, classes), probs)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
            if model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
            scaled = scale_loss(loss)
        gradients = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(probs, -1, output_type=tf.int32), labels), tf.float32))
        return tf.reduce_sum(per_example), correct

    @tf.function
    def train_step(iterator):
        loss_sum, correct = strategy.run(replica_step, args=next(iterator))
        return (strategy.reduce(tf.distribute.ReduceOp.SUM, loss_sum, axis=None),
                strategy.reduce(tf.distribute.ReduceOp.SUM, correct, axis=None))

    writer = tf.summary.create_file_writer(log_dir) if (log_dir and chief) else None
    distributed = strategy.experimental_distribute_dataset(splits.train.repeat())
    iterator = iter(distributed)
    for epoch in range(initial_epoch, epochs):
        start = time.perf_counter()
        progress = keras.utils.Progbar(steps, verbose=verbose, stateful_metrics=(
            "loss", "accuracy", "val_loss", "val_accuracy")) if verbose else None
        if verbose:
            print(f"Epoch {epoch + 1}/{epochs}")
        loss_total = correct_total = 0.0
        for step in range(steps):
            loss_sum, correct = train_step(iterator)
            loss_total += float(loss_sum)
            correct_total += float(correct)
            seen = (step + 1) * global_batch
            if progress:
                progress.update(step + 1, [("loss", loss_total / seen), ("accuracy", correct_total / seen)],
                                finalize=False)
        seconds = time.perf_counter() - start
        validation = evaluate_dataset(model, splits.validation, classes)  # identical weights: each worker alone
        metrics = {"loss": loss_total / (steps * global_batch), "accuracy": correct_total / (steps * global_batch),
                   "val_loss": validation["loss"], "val_accuracy": validation["top1"]}
        if progress:
            progress.update(steps, [(k, v) for k, v in metrics.items() if k.startswith("val_")], finalize=True)
        if writer is not None:
            with writer.as_default(step=epoch + 1):
                for key, value in metrics.items():
                    tf.summary.scalar(key, value)
            writer.flush()
        recorder.end_epoch(epoch, seconds, metrics)
    if getattr(optimizer, "use_ema", False):
        optimizer.finalize_variable_values(model.trainable_variables)


def _agree_on_epoch(strategy, epoch: int) -> None:
    """Every worker must resume from the same epoch (the checkpoint folder must be shared)."""
    import tensorflow as tf

    total = strategy.reduce(tf.distribute.ReduceOp.SUM,
                            strategy.run(lambda: tf.constant(float(epoch))), axis=None)
    if int(round(float(total))) != epoch * strategy.num_replicas_in_sync:
        raise UserError(f"workers disagree on the epoch to resume from (this one: {epoch}); "
                        "put --out on storage every worker can read")


# -- progressive learning ------------------------------------------------------------------------

def _training_stages(recipe, variant):
    """The progressive stages of ``recipe``, or one stage of every epoch at the variant's size."""
    from effscale.training.progressive import Stage

    if recipe.progressive is None:
        return [Stage(0, (0, recipe.epochs), variant.resolution, None, None, None)]
    return recipe.progressive.plan(recipe.epochs, variant.resolution)


def _stage_settings(stage, splits, model) -> dict:
    """What a stage actually trains with, read from its data and its built model."""
    from effscale.training.progressive import dropout_in_force

    return {"stage": stage.index + 1, "resolution": int(splits.train.element_spec[0].shape[1]),
            "dropout": dropout_in_force(model), "randaugment": stage.randaugment, "mixup": stage.mixup}


def _stage_records(history: list[dict]) -> list[dict]:
    """One record per progressive stage from the per-epoch history (it survives resumes)."""
    stages: dict[int, dict] = {}
    for entry in history:
        if "stage" in entry:
            record = stages.setdefault(entry["stage"], {
                "stage": entry["stage"], "first_epoch": entry["epoch"], "epochs": 0,
                **{k: entry.get(k) for k in ("resolution", "dropout", "randaugment", "mixup")}})
            record["epochs"] += 1
    return [stages[k] for k in sorted(stages)]


# -- the entry point ---------------------------------------------------------------------------

def train_variant(genotype, variant="b0", data: "DataSpec | str" = "digits", recipe=None, strategy="auto",
                  out_dir: str = "runs/train", *, verbose: int = 1, log_dir: str | None = None,
                  latency_runs: int = 20, callbacks: list | None = None) -> dict:
    """Train ``genotype`` at ``variant`` on ``data`` and return its results record.

    ``data`` is a :class:`~effscale.data.spec.DataSpec` (or a source name): what
    :func:`effscale.data.pipeline.load_data` reads and how it splits it (the spec's ``seed`` fixes
    the splits; the recipe's seed only shuffles); its resolution is not used, the variant's is.
    ``recipe`` is a :class:`~effscale.training.recipe.Recipe` (default ``Recipe()``; epochs, batch,
    augmentation, seed, optimizer). ``strategy`` is a name (auto|default|mirrored|multiworker|tpu),
    a ``tf.distribute.Strategy`` or an :class:`~effscale.training.strategy.Execution` (the strategy
    with mixed precision, training loop, TPU address and CPU replicas). Rerunning with the same
    ``out_dir`` resumes from the last per-epoch backup; a finished run returns its record.
    ``latency_runs`` timed batch-1 forward passes are measured at the end (0: skipped).
    ``callbacks`` are Keras callbacks added to ``fit`` (not available under the custom loop).

    Example (about a minute on two CPU cores, so not a doctest; tests/test_train.py runs it)::

        record = train_variant("tiny", "w=0.25,d=0.25,r=16", "digits",
                               Recipe(epochs=4, batch_size=64, batch_scope="global"), out_dir="runs/tiny")
        record["test_top1"], record["epochs_done"], record["strategy"]["name"]   # (0.94..., 4, 'default')
    """
    import keras

    from effscale.data.spec import DataSpec
    from effscale.model.builder import ModelOptions, build
    from effscale.model.cost import cost
    from effscale.data.pipeline import load_data
    from effscale.training.evaluate import MODEL_FILE, RESULTS_FILE, evaluate_dataset, summary_line, weights_digest
    from effscale.model.zoo import load_genotype
    from effscale.training.recipe import Recipe
    from effscale.model.variants import resolve_variant
    from effscale.training.strategy import (Execution, device_kind, dtype_policy, global_batch_size, is_chief,
                                            is_multiworker, mixed_precision_policy, resolve_strategy, strategy_name)

    wall_start = time.perf_counter()
    genotype = load_genotype(genotype)
    variant = resolve_variant(variant, genotype)
    recipe = recipe if recipe is not None else Recipe()
    if isinstance(recipe, dict):
        recipe = Recipe.from_dict(recipe)
    spec = DataSpec.of(data)
    execution = Execution.of(strategy)
    out_dir = os.path.abspath(os.fspath(out_dir))
    check_output_folder(out_dir)  # nothing is created until the input has been validated

    strategy = execution.strategy
    if isinstance(strategy, str):
        strategy = resolve_strategy(strategy, tpu=execution.tpu, cpu_replicas=execution.cpu_replicas)
    name = strategy_name(strategy)
    chief = is_chief(strategy)
    replicas = strategy.num_replicas_in_sync
    global_batch, per_replica = global_batch_size(recipe.batch_size, replicas, recipe.batch_scope)
    policy = mixed_precision_policy(execution.mixed_precision, device_kind(strategy))
    use_custom = execution.loop == "custom" or (execution.loop == "auto" and is_multiworker(strategy))

    data_options = {k: v for k, v in spec.record().items() if k not in ("dataset", "data_dir")}
    signature = {"genotype": genotype.encode(), "variant": variant.to_dict(), "dataset": spec.source,
                 "data_dir": spec.data_dir, **data_options,
                 "recipe": {k: v for k, v in recipe.to_dict().items() if k != "epochs"}}
    run_path = os.path.join(out_dir, RUN_FILE)
    previous = _read_record(run_path, "training run")
    if previous is not None:
        if plain_json(previous) != plain_json(signature):
            differing = sorted(k for k in set(signature) | set(previous)
                               if plain_json(previous.get(k)) != plain_json(signature.get(k)))
            raise UserError(f"{out_dir!r} holds another run (it differs in {', '.join(differing)}); "
                            "use a new --out folder")
    results_path = os.path.join(out_dir, RESULTS_FILE)
    state = read_state(out_dir)
    record = _read_record(results_path, "training results") if state is not None and state["epoch"] >= recipe.epochs else None
    if record is not None:
        if verbose:
            print(f"{out_dir}: already trained for {state['epoch']} epochs; " + summary_line(record))
        return record
    initial_epoch = state["epoch"] if state else 0
    if initial_epoch > recipe.epochs:
        raise UserError(f"{out_dir!r} was trained for {initial_epoch} epochs, more than the {recipe.epochs} asked")

    stages = _training_stages(recipe, variant)
    if (len(stages) > 1 or callbacks) and use_custom:
        raise UserError("progressive learning and callbacks run under Keras fit only (not the custom loop "
                        "or multiworker)")
    recorder = None
    write_signature = chief and previous is None  # none yet, or a damaged one
    for stage in stages:
        if stage.epochs[1] <= initial_epoch and stage is not stages[-1]:
            continue  # finished before this process started
        start = max(stage.epochs[0], initial_epoch)
        randaugment = recipe.randaugment if stage.randaugment is None else stage.randaugment
        splits = load_data(spec.replace(resolution=stage.resolution), batch_size=global_batch,
                           augment=recipe.augment or bool(stage.randaugment), randaugment=randaugment,
                           drop_remainder=True, shuffle_seed=recipe.seed + 1009 * start)
        steps = splits.train_size // global_batch
        if steps < 1:
            raise UserError(f"global batch {global_batch} is larger than the {splits.train_size} training images")
        if write_signature:  # the input is valid: the first file of the run
            os.makedirs(out_dir, exist_ok=True)
            migrations.write_state(run_path, signature)
            write_signature = False

        keras.utils.set_random_seed(recipe.seed + stage.index)
        dropout = recipe.dropout if stage.dropout is None else stage.dropout
        with dtype_policy(policy), strategy.scope():
            options = ModelOptions(dropout=dropout, drop_connect=recipe.drop_connect, bn_momentum=recipe.bn_momentum,
                                   bn_epsilon=recipe.bn_epsilon)
            model = build(genotype, variant, classes=splits.num_classes,
                          input_shape=(stage.resolution, stage.resolution, 3), options=options)
            synchronized = _synchronize_batch_norm(model) if (replicas > 1 and recipe.sync_batch_norm) else 0
            optimizer = recipe.make_optimizer(global_batch, steps)
            if policy == "mixed_float16" and use_custom:
                optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
            model.optimizer = optimizer  # so that save_weights / load_weights carry the optimizer state
            backup = state if recorder is None else read_state(out_dir)  # this run's last epoch, or the stage before's
            if backup is not None:
                restore_checkpoint(model, optimizer, out_dir, backup)
        if recorder is None:
            if use_custom and name == "multiworker":
                _agree_on_epoch(strategy, initial_epoch)
            recorder = _EpochRecorder(model, out_dir, chief, state, steps * global_batch, None)
            if state is not None:
                recorder.resumed.append(initial_epoch)
                if verbose:
                    print(f"resuming {out_dir} at epoch {initial_epoch + 1}/{recipe.epochs}")
        recorder.model, recorder.first_epoch_of_process = model, True
        if len(stages) > 1:
            recorder.extra = _stage_settings(stage, splits, model)
            if verbose and start < stage.epochs[1]:
                print(f"stage {stage.index + 1}/{len(stages)}: " +
                      ", ".join(f"{k} {v}" for k, v in recorder.extra.items() if k != "stage"))

        with dtype_policy(policy):
            if start < stage.epochs[1]:
                if use_custom:
                    _custom_loop(model, optimizer, splits, recipe, strategy, stage.epochs[1], start, steps,
                                 global_batch, recorder, verbose, log_dir, chief)
                else:
                    transform = None
                    if stage.mixup:
                        from effscale.training.progressive import mixup_transform

                        transform = mixup_transform(stage.mixup, recipe.seed + start)
                    _fit_loop(model, optimizer, splits, recipe, strategy, stage.epochs[1], start, steps,
                              recorder, verbose, log_dir, transform, callbacks or ())
    with dtype_policy(policy):
        validation = evaluate_dataset(model, splits.validation, splits.num_classes)
        test = evaluate_dataset(model, splits.test, splits.num_classes)

    analytic = cost(genotype, variant, classes=splits.num_classes)
    latency = None
    if latency_runs and chief:
        from effscale.training.evaluate import float32_copy
        from effscale.latency import measure_latency

        latency = measure_latency(float32_copy(model), runs=latency_runs, warmup=3)
    record = {
        "genotype": genotype.encode(), "genotype_key": genotype.key, "variant": variant.to_dict(),
        "data": dict(splits.describe(), data_dir=spec.data_dir, **data_options),
        "recipe": recipe.to_dict(),
        "strategy": {"name": name, "replicas": replicas, "chief": chief,
                     "loop": "custom" if use_custom else "fit", "synchronized_batch_norm_layers": synchronized},
        "mixed_precision": policy, "global_batch": global_batch, "per_replica_batch": per_replica,
        "peak_learning_rate": recipe.peak_learning_rate(global_batch), "steps_per_epoch": steps,
        **split_metrics("test", test), **split_metrics("validation", validation),
        "params": int(model.count_params()), "multiply_adds": int(analytic.multiply_adds),
        "latency_seconds": latency,
        "train_images_per_second": recorder.images_per_second(steps * global_batch * len(recorder.history)),
        "epochs": recipe.epochs, "epochs_done": len(recorder.history),
        "progressive": _stage_records(recorder.history) if len(stages) > 1 else None,
        "resumed_from_epochs": recorder.resumed, "history": recorder.history,
        "train_seconds": round(recorder.train_seconds, 3),
        "wall_seconds": round(time.perf_counter() - wall_start + recorder.wall_offset, 3),
        "weights_sha256": weights_digest(model), "model": MODEL_FILE,
    }
    if chief:
        _export_model(model, os.path.join(out_dir, MODEL_FILE))
        migrations.write_state(results_path, record)
    if verbose:
        print(f"{variant.name} of {genotype.key} on {splits.source}: " + summary_line(record) +
              f", {record['epochs_done']} epochs, {record['wall_seconds']:.1f} s")
    return record
