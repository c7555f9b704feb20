"""``effscale finetune``.

    effscale finetune efficientnet-b0 --variant b0 --dataset tfds:tf_flowers --weights imagenet:b0 --out runs/flowers
    effscale finetune runs/tiny --dataset path/to/images --unfreeze 2 --out runs/tiny-images

Bad input (an unknown genotype or dataset, a missing weights file, an output folder that
already holds a result) is one line on stderr and exit code 2, and nothing is written.
"""

from __future__ import annotations

import json
import os

from effscale.common.errors import UserError


def _quiet() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _config(args):
    from effscale.training.finetune import FineTuneConfig

    config = FineTuneConfig()
    if args.config:
        if not os.path.isfile(args.config):
            raise UserError(f"--config {args.config!r} does not exist")
        with open(args.config) as handle:
            config = FineTuneConfig.from_json(handle.read())
    changes = {field: getattr(args, field) for field in (
        "head_epochs", "epochs", "learning_rate", "head_learning_rate", "unfreeze", "resolution", "batch_size",
        "steps_per_epoch", "seed") if getattr(args, field) is not None}
    if args.gradual:
        changes["gradual"] = True
    if args.no_augment:
        changes["augment"] = False
    return config.replace(**changes) if changes else config


def cmd_finetune(args) -> int:
    from effscale.model.zoo import load_genotype
    from effscale.model.variants import resolve_variant

    from effscale.data.spec import DataSpec

    config = _config(args)
    base = args.base
    if not (os.path.isdir(base) or base.endswith(".keras")):  # a genotype: check it before TensorFlow loads
        resolve_variant(args.variant, load_genotype(base))
    if args.weights and not args.weights.startswith("imagenet") and not os.path.exists(args.weights):
        raise UserError(f"--weights {args.weights!r} does not exist (keras caches ImageNet files under "
                        "~/.keras/models/; effscale never downloads)")
    if os.path.isfile(os.path.join(args.out, "finetune.json")):
        raise UserError(f"--out {args.out!r} already holds a fine-tuned model; use a new folder")
    _quiet()
    from effscale.training.finetune import finetune, summary

    data = DataSpec(args.dataset, data_dir=args.data_dir, download=args.download,
                    validation_fraction=config.validation_fraction, seed=config.seed)
    record = finetune(base, args.variant, data, config, weights=args.weights, out_dir=args.out,
                      verbose=args.verbose)
    record.pop("_model", None)
    if args.json:
        print(json.dumps({k: v for k, v in record.items() if k != "history"}, indent=2, sort_keys=True))
        return 0
    if record["transfer"] is not None:
        from effscale.model.weights import TransferReport

        transfer = TransferReport(**{k: v for k, v in record["transfer"].items() if k != "shapes"})
        print(f"weights from {transfer.source}: {transfer.summary()}")
    print(f"{args.out}: {summary(record)}")
    return 0


def register(commands) -> None:
    """Add ``finetune`` to the ``effscale`` sub-commands."""
    from effscale.common.checks import BATCH_MAX, COUNT_MAX, EPOCHS_MAX, SEED_MAX, float_flag, int_flag
    from effscale.data.pipeline import SOURCES_HELP

    finetune = commands.add_parser("finetune", help="fine-tune a genotype or a trained model on new data (2 phases)")
    finetune.add_argument("base", help="genotype (name, string or JSON file), a .keras model or a training output folder")
    finetune.add_argument("--variant", default="b0", help="for a genotype: b0..b8, l2, phi=X, w=..,d=..,r=..")
    finetune.add_argument("--dataset", required=True, help=SOURCES_HELP)
    finetune.add_argument("--data-dir", help="tensorflow-datasets data_dir")
    finetune.add_argument("--download", action="store_true", help="let tensorflow-datasets download and prepare")
    finetune.add_argument("--weights", help="imagenet:bN (keras' cache), a .keras/.weights.h5/.h5 file")
    finetune.add_argument("--config", help="FineTuneConfig JSON file; the flags below override it")
    finetune.add_argument("--unfreeze", type=int_flag(-1, 10_000), help="top stages trained in phase 2 (-1: all)")
    finetune.add_argument("--gradual", action="store_true", help="unfreeze one more stage per phase-2 epoch")
    finetune.add_argument("--head-epochs", type=int_flag(0, EPOCHS_MAX))
    finetune.add_argument("--epochs", type=int_flag(0, EPOCHS_MAX), help="phase-2 epochs")
    finetune.add_argument("--head-learning-rate", type=float_flag(0, low_open=True))
    finetune.add_argument("--learning-rate", type=float_flag(0, low_open=True), help="phase-2 learning rate")
    finetune.add_argument("--resolution", type=int_flag(8, 4096))
    finetune.add_argument("--batch-size", type=int_flag(1, BATCH_MAX))
    finetune.add_argument("--steps-per-epoch", type=int_flag(1, COUNT_MAX))
    finetune.add_argument("--no-augment", action="store_true")
    finetune.add_argument("--seed", type=int_flag(0, SEED_MAX))
    finetune.add_argument("--verbose", type=int, default=0, choices=(0, 1, 2))
    finetune.add_argument("--json", action="store_true")
    finetune.add_argument("--out", required=True, help="output folder: model.keras, finetune.json")
    finetune.set_defaults(func=cmd_finetune)
