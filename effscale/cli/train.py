"""``effscale train`` and ``effscale evaluate``.

    effscale train tiny --variant w=0.5,d=0.5,r=32 --dataset digits --epochs 5 --out runs/tiny
    effscale evaluate runs/tiny

Bad input (unknown dataset, empty image folder, a batch smaller than the replica count, ...)
is one line on stderr and exit code 2.
"""

from __future__ import annotations

import json
import os

from effscale.common.errors import UserError


def _quiet() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _load_recipe(path: str | None):
    from effscale.training.recipe import Recipe

    if path is None:
        return Recipe()
    if not os.path.isfile(path):
        raise UserError(f"--recipe {path!r} does not exist")
    with open(path) as handle:
        return Recipe.from_json(handle.read())


def cmd_train(args) -> int:
    from effscale.model.zoo import load_genotype
    from effscale.model.variants import resolve_variant
    from effscale.training.strategy import STRATEGIES

    from effscale.data.pipeline import check_source
    from effscale.data.spec import DataSpec
    from effscale.training.strategy import Execution

    # validate what needs no TensorFlow before importing it
    check_source(args.dataset, args.data_dir)
    data = DataSpec(args.dataset, data_dir=args.data_dir, validation_fraction=args.validation_fraction,
                    test_fraction=args.test_fraction, train_fraction=args.train_fraction, download=args.download)
    genotype = load_genotype(args.genotype)
    resolve_variant(args.variant, genotype)
    recipe = _load_recipe(args.recipe)
    if args.strategy not in STRATEGIES:
        raise UserError(f"unknown strategy {args.strategy!r}: expected one of {', '.join(STRATEGIES)}")
    execution = Execution(args.strategy, mixed_precision=args.mixed_precision, loop=args.loop,
                          cpu_replicas=args.cpu_replicas)
    changes = {}
    for field in ("optimizer", "learning_rate", "label_smoothing", "seed"):
        value = getattr(args, field)
        if value is not None:
            changes[field] = value
    if args.augment or args.augmentation:
        changes["augment"] = args.augmentation or True
    if args.per_replica_batch is not None and args.batch_size is not None:
        raise UserError("give --batch-size (global) or --per-replica-batch, not both")
    if args.batch_size is not None:
        changes.update(batch_size=args.batch_size, batch_scope="global")
    if args.per_replica_batch is not None:
        changes.update(batch_size=args.per_replica_batch, batch_scope="per_replica")
    if args.epochs is not None:
        changes["epochs"] = args.epochs
    if args.progressive is not None:
        from effscale.training.progressive import Progressive

        changes["progressive"] = Progressive.parse(args.progressive)
    recipe = recipe.replace(**changes) if changes else recipe
    _quiet()
    from effscale.training.train import train_variant

    record = train_variant(genotype, args.variant, data, recipe, execution, args.out, verbose=args.verbose,
                           log_dir=args.log_dir, latency_runs=args.latency_runs)
    if args.json:
        print(json.dumps({k: v for k, v in record.items() if k != "history"}, indent=2, sort_keys=True))
    elif not args.verbose:  # train_variant prints the summary line itself when verbose
        from effscale.training.evaluate import summary_line

        print(f"{args.out}: {summary_line(record)}, {record['epochs_done']} epochs")
    return 0


def cmd_evaluate(args) -> int:
    if not os.path.exists(args.model):
        raise UserError(f"{args.model!r} does not exist: expected a training output folder or a .keras file")
    _quiet()
    from effscale.training.evaluate import Timing, evaluate_model, summary_line

    data = {key: value for key, value in (("source", args.dataset), ("data_dir", args.data_dir)) if value}
    result = evaluate_model(args.model, data, batch_size=args.batch_size, split=args.split,
                            timing=Timing(latency_runs=args.latency_runs, throughput_steps=args.throughput_steps))
    print(json.dumps(result, indent=2, sort_keys=True) if args.json else f"{args.model}: {summary_line(result)}")
    return 0


def add_skip_corrupt_images(parser) -> None:
    """The ``--skip-corrupt-images`` option of every command that reads an image folder."""
    parser.add_argument("--skip-corrupt-images", action="store_true",
                        help="image folders: drop files that do not decode (named, counted) instead of refusing")


def register(commands) -> None:
    """Add ``train`` and ``evaluate`` to the ``effscale`` sub-commands."""
    from effscale.common.checks import BATCH_MAX, COUNT_MAX, EPOCHS_MAX, SEED_MAX, float_flag, int_flag

    from effscale.data.pipeline import SOURCES_HELP
    from effscale.training.strategy import MIXED_PRECISION_MODES, STRATEGIES

    train = commands.add_parser("train", help="train a variant with tf.distribute (resumable)")
    train.add_argument("genotype", help="registered name, genotype string or JSON file")
    train.add_argument("--variant", default="b0", help="b0..b8, l2, phi=X, macs=N, params=N or w=..,d=..,r=..")
    train.add_argument("--dataset", default="digits", help=SOURCES_HELP)
    train.add_argument("--data-dir", help="tensorflow-datasets data_dir, or a folder holding the (Fashion-)MNIST IDX files")
    train.add_argument("--download", action="store_true", help="let tensorflow-datasets download and prepare")
    add_skip_corrupt_images(train)
    train.add_argument("--epochs", type=int_flag(1, EPOCHS_MAX))
    train.add_argument("--batch-size", type=int_flag(1, BATCH_MAX), help="global batch, split over the replicas")
    train.add_argument("--per-replica-batch", type=int_flag(1, BATCH_MAX), help="batch per replica (global = this x replicas)")
    train.add_argument("--strategy", default="auto", help="|".join(STRATEGIES))
    train.add_argument("--cpu-replicas", type=int_flag(1, 4096), metavar="N",
                       help="mirrored on a machine without GPUs: split the CPU into N replicas")
    train.add_argument("--mixed-precision", default="auto", choices=MIXED_PRECISION_MODES)
    train.add_argument("--recipe", help="recipe JSON file (effscale.training.recipe.Recipe fields)")
    train.add_argument("--optimizer", choices=("rmsprop", "sgd", "adam"))
    train.add_argument("--learning-rate", type=float_flag(0, low_open=True), help="per 256 images; scaled with the global batch")
    train.add_argument("--label-smoothing", type=float_flag(0, 1))
    train.add_argument("--augment", action="store_true", help="random resized crop and flip")
    train.add_argument("--augmentation", choices=("resized-crop", "padded-crop"),
                       help="implies --augment; padded-crop: a random crop of the image reflect-padded by 1/8 "
                            "of its size, and flip (for small images such as Fashion-MNIST)")
    train.add_argument("--seed", type=int_flag(0, SEED_MAX))
    train.add_argument("--progressive", metavar="SPEC",
                       help="progressive learning (EfficientNetV2): stages=4,resolution=16-32,dropout=0.1-0.3,"
                            "randaugment=0.1-0.5,mixup=0-0.2 (sizes and regularization grow stage by stage)")
    train.add_argument("--validation-fraction", type=float_flag(0, 1), default=0.2,
                       help="held out of the training images as the validation split, where the dataset has none")
    train.add_argument("--test-fraction", type=float_flag(0, 1), default=0.2,
                       help="held out of all images as the test split, where the dataset has none (digits, folders)")
    train.add_argument("--train-fraction", type=float_flag(0, 1, low_open=True),
                       help="train on this class-balanced part of the training split (cheap proxies)")
    train.add_argument("--loop", default="auto", choices=("auto", "fit", "custom"))
    train.add_argument("--latency-runs", type=int_flag(0, COUNT_MAX), default=20, help="0 skips the latency measurement")
    train.add_argument("--log-dir", help="TensorBoard log folder")
    train.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2))
    train.add_argument("--json", action="store_true", help="print the results record")
    train.add_argument("--out", required=True, help="output folder: checkpoint/, model.keras, results.json")
    train.set_defaults(func=cmd_train)

    evaluate = commands.add_parser("evaluate", help="evaluate a trained variant (top-1/5, cost, latency)")
    evaluate.add_argument("model", help="training output folder (or a .keras file)")
    evaluate.add_argument("--dataset", help="default: the dataset it was trained on")
    evaluate.add_argument("--data-dir")
    evaluate.add_argument("--batch-size", type=int_flag(1, BATCH_MAX), default=64)
    evaluate.add_argument("--split", default="test", choices=("test", "validation"),
                          help="the split to measure (default: test, the one nothing was selected on)")
    evaluate.add_argument("--latency-runs", type=int_flag(0, COUNT_MAX), default=20)
    evaluate.add_argument("--throughput-steps", type=int_flag(0, COUNT_MAX), default=5)
    evaluate.add_argument("--json", action="store_true")
    evaluate.set_defaults(func=cmd_evaluate)
