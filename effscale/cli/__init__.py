"""The ``effscale`` command line.

Every sub-command turns bad input into one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys

from effscale.common.errors import OutputError, UserError


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own usage errors: one line, exit 2
        self.exit(2, f"effscale: error: {message}\n")


def _quiet_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def cmd_zoo(args) -> int:
    from effscale.model.zoo import REGISTRY

    if args.json:
        print(json.dumps({n: {"genotype": b.genotype.encode(), "source": b.source,
                              "description": b.description} for n, b in REGISTRY.items()}, indent=2))
        return 0
    width = max(len(n) for n in REGISTRY)
    for name, baseline in REGISTRY.items():
        print(f"{name:<{width}}  {baseline.description}")
        print(f"{'':<{width}}  {baseline.genotype.encode()}")
    return 0


def cmd_describe(args) -> int:
    from effscale.model.describe import describe_family, describe_variant
    from effscale.model.zoo import load_genotype
    from effscale.model.variants import resolve_family, resolve_variant

    genotype = load_genotype(args.genotype)
    if args.family:
        variants = resolve_family(args.family, genotype)
        print(describe_family(genotype, variants, classes=args.classes, as_json=args.json))
    else:
        variant = resolve_variant(args.variant, genotype)
        print(describe_variant(genotype, variant, classes=args.classes, as_json=args.json))
    return 0


def cmd_build(args) -> int:
    from effscale.model.zoo import load_genotype
    from effscale.common.io import atomic_path
    from effscale.model.variants import resolve_variant

    genotype = load_genotype(args.genotype)
    variant = resolve_variant(args.variant, genotype)
    if args.classes < 1:
        raise UserError(f"--classes must be a positive integer, got {args.classes}")
    if not args.out.endswith(".keras"):
        raise UserError(f"--out {args.out!r}: expected a path ending in .keras")
    directory = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(directory) or not os.access(directory, os.W_OK):
        raise UserError(f"--out {args.out!r}: folder {directory!r} does not exist or is not writable")
    _quiet_tensorflow()
    from effscale.model.builder import build

    model = build(genotype, variant, classes=args.classes, include_top=not args.no_top)
    with atomic_path(args.out) as temporary:
        model.save(temporary)
    print(f"wrote {args.out}: {variant.name} of {genotype.key}, {model.count_params():,} parameters, "
          f"input {model.input_shape[1:]}")
    return 0


# Modules that add their own sub-commands: each exposes register(commands).
_SUBCOMMAND_MODULES: tuple[str, ...] = ("effscale.cli.family", "effscale.cli.search", "effscale.cli.train",
                                         "effscale.cli.finetune", "effscale.cli.export", "effscale.cli.proxy")


def _positive_number(text: str) -> float:
    from effscale.common.checks import float_flag

    return float_flag(0, low_open=True)(text)


def check_environment() -> None:
    """Refuse, before a command runs, environment settings that would fail later: a size limit
    that is not a positive finite number (``EFFSCALE_MAX_PARAMS=abc``), a malformed ``TF_CONFIG``."""
    from effscale.model.limits import check_limits
    from effscale.training.strategy import check_tf_config

    check_limits()
    check_tf_config()


# Commands that never start TensorFlow: no need to import it quietly first.
_LIGHT_COMMANDS = frozenset({"zoo", "describe", "status", "report", "trials"})


def make_parser() -> argparse.ArgumentParser:
    from effscale import __version__
    from effscale.common.checks import CLASSES_MAX, int_flag
    from effscale.model.limits import LIMITS

    parser = _Parser(prog="effscale", description="Neural architecture search into model families, for Keras.")
    parser.add_argument("--version", action="version", version=f"effscale {__version__}")
    for name, (variable, default, noun, option) in LIMITS.items():
        parser.add_argument(option, type=_positive_number, metavar="N",
                            help=f"refuse to build more than N {noun} (default {default:g}; also {variable})")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    zoo = commands.add_parser("zoo", help="list the registered baseline genotypes")
    zoo.add_argument("--json", action="store_true")
    zoo.set_defaults(func=cmd_zoo)

    describe = commands.add_parser("describe", help="stage table, parameters and multiply-adds of a variant")
    describe.add_argument("genotype", help="registered name, genotype string or JSON file")
    describe.add_argument("--variant", default="b0", help="b0..b8, l2, phi=X, macs=N, params=N or w=..,d=..,r=..")
    describe.add_argument("--family", help="describe a whole family instead: b0-b7, phi=0..6, b0,b2,b4")
    describe.add_argument("--classes", type=int_flag(1, CLASSES_MAX), default=1000)
    describe.add_argument("--json", action="store_true")
    describe.set_defaults(func=cmd_describe)

    build = commands.add_parser("build", help="build a variant and save it as a .keras file")
    build.add_argument("genotype")
    build.add_argument("--variant", default="b0")
    build.add_argument("--classes", type=int_flag(1, CLASSES_MAX), default=1000)
    build.add_argument("--no-top", action="store_true", help="leave out pooling, dropout and the classifier")
    build.add_argument("--out", required=True, help="FILE.keras")
    build.set_defaults(func=cmd_build)

    for module_name in _SUBCOMMAND_MODULES:
        importlib.import_module(module_name).register(commands)
    return parser


def _command_environment(args) -> dict[str, str]:
    """Environment settings a command's options ask for (inherited by the processes it starts)."""
    from effscale.data.image_check import SKIP_VARIABLE
    from effscale.model.limits import LIMITS

    values = {}
    for name, (variable, _, _, option) in LIMITS.items():
        value = getattr(args, option.lstrip("-").replace("-", "_"), None)
        if value is not None:
            values[variable] = repr(value)
    if getattr(args, "skip_corrupt_images", False):
        values[SKIP_VARIABLE] = "1"
    return values


def main(argv: list[str] | None = None) -> int:
    """Run one command. Bare ``effscale`` prints the usage; TensorFlow's start-up logging is
    kept off the console unless ``--verbose`` (bare or 2) asks for everything."""
    from effscale.common.checks import one_line
    from effscale.common.console import quiet_tensorflow, wants_verbose_logs
    from effscale.common.interrupt import MESSAGE, Interrupted, interruptible, scoped_environment

    argv = sys.argv[1:] if argv is None else list(argv)
    parser = make_parser()
    if not argv:
        parser.print_help()
        return 0
    args = parser.parse_args(argv)
    if args.command not in _LIGHT_COMMANDS and not wants_verbose_logs(argv):
        quiet_tensorflow()
    try:
        with interruptible(), scoped_environment(_command_environment(args)):
            check_environment()
            return args.func(args)
    except UserError as error:
        print(f"effscale: error: {one_line(error)}", file=sys.stderr)
        return 2
    except OSError as error:  # a full, unwritable or read-only disk: one line, exit 1
        from effscale.common.io import write_failure

        failure = error if isinstance(error, OutputError) else write_failure(error.filename or "?", error)
        if failure is None:
            raise
        print(f"effscale: error: {one_line(failure)}", file=sys.stderr)
        return 1
    except Interrupted as stop:
        print(f"effscale: {MESSAGE}", file=sys.stderr)
        return stop.code
    except Exception as error:  # a lost multi-worker peer: one line, exit 1; anything else is a bug
        from effscale.training.peers import peer_lost_message

        message = peer_lost_message(error)
        if message is None:
            raise
        print(f"effscale: error: {one_line(message)}", file=sys.stderr)
        return 1
