"""``effscale family``, ``status``, ``report`` and ``demo``: the family pipeline on the command line."""

from __future__ import annotations

import copy


# The embedded default: offline, on the bundled digits, a few minutes on two CPU cores.
DEMO_CONFIG = {
    "dataset": "digits",
    "baseline": "tiny",
    "search": {"enabled": True, "oracle": "evolution", "cost": "macs", "target": 1.2e6, "trials": 6,
               "epochs": 2, "resolution": 16, "width": 0.5, "seed": 0},
    "scaling": {"family": "phi=0..2", "base": "w=0.5,d=0.5,r=24"},
    "training": {"epochs": 10, "batch_size": 64},
}

# flag -> (dotted config key, type)
_FAMILY_FLAGS = {
    "dataset": ("dataset", str), "baseline": ("baseline", str), "oracle": ("search.oracle", str),
    "cost": ("search.cost", str), "target": ("search.target", float), "constraint": ("search.constraint", str),
    "trials": ("search.trials", int), "proxy_epochs": ("search.epochs", int), "family": ("scaling.family", str),
    "base": ("scaling.base", str), "train_epochs": ("training.epochs", int), "batch_size": ("training.batch_size", int),
    "strategy": ("training.strategy", str), "mixed_precision": ("training.mixed_precision", str),
    "seed": ("seed", int),
}


def _verbosity(args) -> int:
    return 0 if args.quiet else (2 if args.verbose else 1)


def cmd_family(args) -> int:
    from effscale.family.config import FamilyConfig
    from effscale.family.pipeline import run_family

    overrides = {key: getattr(args, flag) for flag, (key, _) in _FAMILY_FLAGS.items()
                 if getattr(args, flag) is not None}
    if args.no_search:
        overrides["search.enabled"] = False
    if args.search_coefficients:
        overrides["coefficients.search"] = True
    config = FamilyConfig.load(args.config, overrides)
    run_family(config, args.out, verbose=_verbosity(args))
    return 0


def cmd_demo(args) -> int:
    from effscale.family.config import FamilyConfig
    from effscale.family.pipeline import run_family
    from effscale.family.report import recommendation_line

    config = copy.deepcopy(DEMO_CONFIG)
    print(f"effscale demo: search, scale and train a family on the bundled digits; results in {args.out}/")
    results = run_family(FamilyConfig.from_dict(config), args.out, verbose=_verbosity(args))
    print(f"demo finished. {recommendation_line(results).replace('`', '')} Open {args.out}/report.html")
    return 0


def cmd_status(args) -> int:
    from effscale.family.pipeline import run_status

    print(run_status(args.dir, as_json=args.json))
    return 0


def cmd_report(args) -> int:
    from effscale.family.report import write_report

    paths = write_report(args.dir)
    for path in paths.values():
        print(f"wrote {path}")
    return 0


def _add_verbosity(parser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quiet", action="store_true", help="only errors and the final line")
    group.add_argument("--verbose", action="store_true", help="Keras progress bars within each epoch")


def register(commands) -> None:
    from effscale.cli.train import add_skip_corrupt_images
    from effscale.common.checks import BATCH_MAX, COUNT_MAX, EPOCHS_MAX, SEED_MAX, float_flag, int_flag
    from effscale.data.pipeline import SOURCES_HELP

    family = commands.add_parser("family", help="search, scale, train and report a whole family")
    family.add_argument("--config", help="YAML or TOML file; flags below override its keys")
    family.add_argument("--out", required=True, help="run directory (rerun the same command to resume)")
    family.add_argument("--dataset", help=SOURCES_HELP)
    add_skip_corrupt_images(family)
    family.add_argument("--baseline", help="registered name, genotype string or JSON file")
    family.add_argument("--oracle")
    family.add_argument("--cost")
    family.add_argument("--target", type=float_flag(0, low_open=True))
    family.add_argument("--constraint")
    family.add_argument("--trials", type=int_flag(1, COUNT_MAX))
    family.add_argument("--proxy-epochs", type=int_flag(1, EPOCHS_MAX), help="epochs of each search trial's proxy training")
    family.add_argument("--no-search", action="store_true", help="scale the baseline as it is")
    family.add_argument("--search-coefficients", action="store_true",
                        help="grid-search alpha, beta, gamma at phi = 1 first")
    family.add_argument("--family", help="b0-b7, phi=0..3, b0,b2,b4 or a ;-separated list")
    family.add_argument("--base", help="rescale the baseline before deriving the family, e.g. w=0.5,d=0.5,r=32")
    family.add_argument("--train-epochs", dest="train_epochs", type=int_flag(1, EPOCHS_MAX),
                        help="epochs of each member's training")
    family.add_argument("--batch-size", type=int_flag(1, BATCH_MAX))
    family.add_argument("--strategy")
    family.add_argument("--mixed-precision")
    family.add_argument("--seed", type=int_flag(0, SEED_MAX))
    _add_verbosity(family)
    family.set_defaults(func=cmd_family)

    demo = commands.add_parser("demo", help="the embedded default: a small family on the bundled digits, offline")
    demo.add_argument("--out", default="effscale-demo")
    _add_verbosity(demo)
    demo.set_defaults(func=cmd_demo)

    status = commands.add_parser("status", help="where a family run stands")
    status.add_argument("dir")
    status.add_argument("--json", action="store_true", help="the stages as JSON")
    status.set_defaults(func=cmd_status)

    report = commands.add_parser("report", help="(re)write a family run's Markdown and HTML report")
    report.add_argument("dir")
    report.set_defaults(func=cmd_report)


