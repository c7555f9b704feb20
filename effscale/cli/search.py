"""``effscale search`` and ``effscale trials``: the search half of the command line.

>>> import argparse
>>> parser = argparse.ArgumentParser(prog="effscale")
>>> register(parser.add_subparsers(dest="command"))
>>> args = parser.parse_args(["search", "--baseline", "tiny", "--project-dir", "p"])
>>> args.oracle, args.cost, args.constraint, args.trials
('evolution', 'macs', 'soft', '10')
"""

from __future__ import annotations

import csv
import os

from effscale.common.errors import UserError


def _positive_int(text: str, flag: str, high: int | None = None) -> int:
    from effscale.common.checks import parse_int

    return parse_int(text, flag, 1, high)


def _number(text: str, flag: str) -> float:
    from effscale.common.checks import parse_float

    return parse_float(text, flag)


def _choice_option(text: str) -> tuple[str, tuple]:
    from effscale.common.checks import parse_float, parse_int, shorten

    name, sep, values = text.partition("=")
    if not sep or not values:
        raise UserError(f"--choice {shorten(text)}: expected NAME=V1,V2,... (e.g. kernel=3,5,7)")
    parsed = []
    for value in values.split(","):
        value = value.strip()
        if value.lower() in ("true", "on", "yes"):
            parsed.append(True)
        elif value.lower() in ("false", "off", "no"):
            parsed.append(False)
        else:
            try:
                parsed.append(parse_int(value, "a choice value"))
            except UserError:
                try:
                    parsed.append(parse_float(value, "a choice value"))
                except UserError:
                    parsed.append(value)
    return name.strip(), tuple(parsed)


def parse_stages(text: str) -> list[int]:
    """The stage numbers of ``--stages`` (comma-separated, 1-based).

    >>> parse_stages("2, 4")
    [2, 4]
    >>> parse_stages("2,x")
    Traceback (most recent call last):
    ...
    effscale.common.errors.UserError: --stages '2,x': 'x' is not a stage number (expected e.g. 2,3,5)
    """
    numbers = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit() or not part.isascii() or len(part) > 4:
            from effscale.common.checks import shorten

            raise UserError(f"--stages {shorten(text)}: {shorten(part)} is not a stage number (expected e.g. 2,3,5)")
        numbers.append(int(part))
    return numbers


def _flag_dest(flag: str) -> str:
    return "oracle_flag_" + flag.lstrip("-").replace("-", "_")


def add_oracle_flags(parser) -> None:
    """Every registered oracle's option flags (:class:`~effscale.search.registry.OracleFlag`),
    each once even when several oracles declare it."""
    from effscale.search.registry import registered_oracles

    flags: dict = {}
    for entry in registered_oracles():
        for flag in entry.flags:
            flags.setdefault(flag.flag, (flag, []))[1].append(entry.name)
    for name, (flag, oracles) in flags.items():
        parser.add_argument(name, type=flag.type, dest=_flag_dest(name), help=f"{' / '.join(oracles)}: {flag.help}")


def oracle_flag_options(args) -> dict:
    """The oracle options that ``args``' oracle flags set; UserError for a flag of another oracle."""
    from effscale.search.registry import oracle_entry, registered_oracles

    mine = {flag.flag: flag.option for flag in oracle_entry(args.oracle).flags}
    options = {}
    for entry in registered_oracles():
        for flag in entry.flags:
            value = getattr(args, _flag_dest(flag.flag), None)
            if value is None:
                continue
            if flag.flag not in mine:
                owners = [e.name for e in registered_oracles() if any(f.flag == flag.flag for f in e.flags)]
                raise UserError(f"{flag.flag} applies to --oracle {' / '.join(owners)} only")
            options[mine[flag.flag]] = value
    return options


def cmd_search(args) -> int:
    from effscale.common.checks import COUNT_MAX, EPOCHS_MAX, SEED_MAX, parse_int
    from effscale.search import SearchConfig, run_search
    from effscale.search.registry import check_oracle

    # The flags become one SearchConfig, which validates them (no TensorFlow import: bad input is
    # one line at once); what is left here is the flags' own spelling, checked after the oracle's
    # name so that a misspelt oracle is named as such.
    check_oracle(args.oracle)
    oracle_options = oracle_flag_options(args)
    if args.proxy:
        given = [f"--{k.replace('_', '-')}" for k in ("epochs", "resolution", "width", "train_fraction")
                 if getattr(args, k) is not None]
        if given:
            raise UserError(f"--proxy sets the proxy training; leave out {', '.join(given)}")
    config = SearchConfig(
        args.baseline, oracle=args.oracle, cost=args.cost, target=args.target, constraint=args.constraint,
        trials=_positive_int(args.trials, "--trials", COUNT_MAX),
        epochs=_positive_int("1" if args.epochs is None else args.epochs, "--epochs", EPOCHS_MAX),
        dataset=args.dataset, seed=parse_int(args.seed, "--seed", 0, SEED_MAX), resolution=args.resolution,
        width=_number("1.0" if args.width is None else args.width, "--width"), depth=_number(args.depth, "--depth"),
        alpha=args.alpha, beta=args.beta, max_macs=args.max_macs,
        max_params=args.max_params, max_latency=args.max_latency,
        open_choices=[c.strip() for c in args.open.split(",") if c.strip()] if args.open else None,
        options=dict(_choice_option(c) for c in (args.choice or [])),
        stages=parse_stages(args.stages) if args.stages is not None else None, oracle_options=oracle_options,
        prescreen=args.prescreen, proxy=args.proxy or None, seeds=args.seeds, top_k=args.top_k,
        reevaluate_seeds=args.reevaluate_seeds, train_fraction=args.train_fraction,
        top_rung_augment=args.top_rung_augment)
    result = run_search(config, args.project_dir, verbose=0 if args.quiet else 1, overwrite=args.overwrite,
                        repair=args.repair, worker_timeout=args.worker_timeout, workers=args.workers)
    if result.best_genotype is None:
        print("effscale: no trial completed; see trials.csv for the reasons")
        return 1
    print(f"wrote {os.path.join(result.project_dir, 'best_genotype.json')}, trials.csv, pareto.csv")
    return 0


def _read_csv(path: str) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _table(rows: list[dict], columns: list[str]) -> str:
    if not rows:
        return "(none)"
    widths = {c: max(len(c), *(len(_short(r.get(c, ""))) for r in rows)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns)]
    for row in rows:
        lines.append("  ".join(_short(row.get(c, "")).ljust(widths[c]) for c in columns))
    return "\n".join(lines)


def _short(value) -> str:
    text = "" if value is None else str(value)
    try:
        number = float(text)
        if text and not text.isdigit():
            return f"{number:.4g}"
    except ValueError:
        pass
    return text


def cmd_trials(args) -> int:
    from effscale.common.io import read_json
    from effscale.common.migrations import current

    directory = args.project_dir
    trials_csv = os.path.join(directory, "trials.csv")
    if not os.path.isfile(trials_csv):
        raise UserError(f"{directory!r} has no trials.csv: not an effscale search project, or no trial ended yet")
    rows = _read_csv(trials_csv)
    pareto = _read_csv(os.path.join(directory, "pareto.csv")) if os.path.isfile(
        os.path.join(directory, "pareto.csv")) else []
    if args.json:
        import json

        print(json.dumps({"trials": rows, "pareto": pareto}, indent=2))
        return 0
    from effscale.search.run import trial_number

    columns = ["trial", "status", "reward", "accuracy", "cost", "genotype"]
    print(f"trials ({len(rows)}):")
    print(_table([dict(r, trial=trial_number(r["trial_id"]),
                       genotype=r["genotype"] if r["status"] == "COMPLETED" else r["reason"]) for r in rows], columns))
    print(f"\nPareto front of (accuracy, cost) ({len(pareto)}):")
    print(_table([dict(p, trial=trial_number(p["trial_id"])) for p in pareto],
                 ["trial", "accuracy", "cost", "reward", "genotype"]))
    summary = os.path.join(directory, "search.json")
    if os.path.isfile(summary):
        try:
            saved = read_json(summary)
        except (OSError, ValueError):
            raise UserError(f"{summary} is damaged; rerun the search command with --repair to rebuild it") from None
        best = (current(saved, summary, "search").get("summary") or {}).get("best")
        if best:
            print(f"\nbest: trial {trial_number(best['trial_id'])} reward {best['reward']:.4f}: {best['genotype']}")
    return 0


def register(commands) -> None:
    """Add ``search`` and ``trials`` to the ``effscale`` sub-command parsers."""
    from effscale.cli.train import add_skip_corrupt_images
    from effscale.search.registry import oracle_help
    from effscale.data.pipeline import SOURCES_HELP

    from effscale.common.checks import COUNT_MAX, float_flag, int_flag

    search = commands.add_parser("search", help="search a baseline cell with a Keras Tuner oracle")
    search.add_argument("--baseline", required=True, help="registered name, genotype string or JSON file")
    search.add_argument("--oracle", default="evolution", help=oracle_help())
    search.add_argument("--cost", default="macs", help="macs, params or latency (s/image, LiteRT on this CPU)")
    search.add_argument("--target", help="cost target T (e.g. 400M, 5ms); default: the baseline's own cost")
    search.add_argument("--constraint", default="soft", help="soft (w=-0.07) or hard (alpha=0, beta=-1)")
    search.add_argument("--alpha", type=float_flag(), help="reward exponent when cost <= target")
    search.add_argument("--beta", type=float_flag(), help="reward exponent when cost > target")
    search.add_argument("--max-macs", type=float_flag(0, low_open=True), help="hard limit: reject candidates before training")
    search.add_argument("--max-params", type=float_flag(0, low_open=True), help="hard limit: reject candidates before training")
    search.add_argument("--max-latency", type=float_flag(0, low_open=True), help="hard limit in s/image: reject before training")
    search.add_argument("--trials", default="10")
    search.add_argument("--epochs", help="proxy-training epochs per candidate (default 1)")
    search.add_argument("--dataset", default="digits", help=SOURCES_HELP)
    add_skip_corrupt_images(search)
    search.add_argument("--resolution", type=int_flag(8, 1024), help="proxy resolution (default: the baseline's, at most 64)")
    search.add_argument("--width", help="proxy width multiplier (default 1.0)")
    search.add_argument("--train-fraction", type=float_flag(0, 1, low_open=True),
                        help="train candidates on this class-balanced fraction of the training split")
    from effscale.search.config import TOP_RUNG_AUGMENTATIONS

    search.add_argument("--top-rung-augment", choices=TOP_RUNG_AUGMENTATIONS,
                        help="a multi-fidelity oracle (asha) trains its top rung with this augmentation, as members train")
    search.add_argument("--proxy", metavar="FILE",
                        help="a proxy file from `effscale proxy`: its epochs, schedule, resolution, width, fraction")
    search.add_argument("--seeds", type=int_flag(1, 1_000), default=1, help="training seeds per trial; the objective is their mean")
    search.add_argument("--reevaluate-seeds", type=int_flag(0, 1_000), default=0,
                        help="train the --top-k candidates again to this many seeds and pick by the mean (0: off)")
    search.add_argument("--top-k", type=int_flag(1, COUNT_MAX), default=3, help="candidates of the re-evaluation stage")
    search.add_argument("--depth", default="1.0", help="proxy depth multiplier")
    search.add_argument("--open", help="comma list of open choices: block,kernel,expand,se,skip,repeats,filters "
                                       "(default), activation, stem, head; or 'wide': every choice over broad "
                                       "ranges (effscale.search.space.WIDE)")
    search.add_argument("--choice", action="append", help="values of a choice, e.g. kernel=3,5,7 (repeatable)")
    search.add_argument("--stages", help="comma list of stage numbers to search (default all)")
    search.add_argument("--prescreen", metavar="PROXY:N",
                        help="random / evolution: score N candidates per trial with a zero-cost proxy "
                             "(synflow, grad_norm, naswot, params, macs) or by predicted reward (reward: "
                             "predicted accuracy with the exact cost) and train only the best")
    add_oracle_flags(search)
    search.add_argument("--project-dir", required=True)
    search.add_argument("--seed", default="0")
    search.add_argument("--worker-timeout", type=float_flag(0, low_open=True), default=300.0,
                        help="distributed: a worker silent this long (s) has its trial FAILED")
    from effscale.search.local_workers import WORKERS_MAX

    search.add_argument("--workers", type=int_flag(0, WORKERS_MAX), default=0,
                        help="train the trials in N worker processes started here (this process serves the "
                             "oracle; each worker gets cores/N TensorFlow threads); 0: train in this process")
    search.add_argument("--overwrite", action="store_true", help="start over instead of resuming")
    search.add_argument("--repair", action="store_true",
                        help="rebuild a damaged search.json from this command and the trials on disk, then resume")
    search.add_argument("--quiet", action="store_true", help="no progress lines")
    search.set_defaults(func=cmd_search)

    trials = commands.add_parser("trials", help="print the trials and Pareto front of a search project")
    trials.add_argument("project_dir")
    trials.add_argument("--json", action="store_true")
    trials.set_defaults(func=cmd_trials)
