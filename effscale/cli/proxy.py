"""``effscale proxy``: the proxy-fidelity check on the command line.

>>> import argparse
>>> parser = argparse.ArgumentParser(prog="effscale")
>>> register(parser.add_subparsers(dest="command"))
>>> args = parser.parse_args(["proxy", "--project-dir", "p"])
>>> args.architectures, args.seeds, args.threshold
(12, 2, 0.7)
"""

from __future__ import annotations

import os


def cmd_proxy(args) -> int:
    from effscale.search.fidelity import DEFAULT_FULL, DEFAULT_GRID, ProxyCheck, ProxyTask, run_proxy_check

    # Parse the settings first, so a typo is reported before TensorFlow imports.
    from effscale.search.fidelity import _parse_shard

    _parse_shard(args.shard)
    full = ProxyTask.parse(args.full or DEFAULT_FULL)
    grid = [ProxyTask.parse(s) for s in (args.setting or DEFAULT_GRID)]
    open_choices = [c.strip() for c in args.open.split(",") if c.strip()] if args.open else None
    check = ProxyCheck(args.baseline, dataset=args.dataset, architectures=args.architectures, seeds=args.seeds,
                       full=full, settings=tuple(grid), threshold=args.threshold, seed=args.seed,
                       batch_size=args.batch_size, learning_rate=args.learning_rate, open_choices=open_choices)
    summary = run_proxy_check(check, args.project_dir, verbose=0 if args.quiet else 1, shard=args.shard)
    written = ["proxy_check.json", "proxy_check.md", "proxy_vs_full.png"]
    if summary.get("recommended"):
        written.append("proxy.json (for effscale search --proxy)")
    print(f"wrote {os.path.join(args.project_dir, '')}{{{', '.join(written)}}}")
    return 0


def register(commands) -> None:
    """Add ``proxy`` to the ``effscale`` sub-command parsers."""
    from effscale.common.checks import BATCH_MAX, COUNT_MAX, SEED_MAX, float_flag, int_flag

    proxy = commands.add_parser("proxy", help="check whether cheap proxy trainings rank architectures like full "
                                              "training, and recommend one")
    proxy.add_argument("--baseline", default="tiny", help="registered name, genotype string or JSON file")
    proxy.add_argument("--dataset", default="digits")
    proxy.add_argument("--project-dir", required=True)
    proxy.add_argument("--architectures", type=int_flag(1, COUNT_MAX), default=12, help="architectures sampled (the reference among them)")
    proxy.add_argument("--seeds", type=int_flag(1, 1_000), default=2, help="seeds per architecture and setting")
    proxy.add_argument("--full", help="the full setting: epochs=N,fraction=F,resolution=R,width=W,"
                                      "schedule=constant|cosine,augment=padded-crop|resized-crop (default "
                                      "epochs=6,schedule=cosine; the members' final schedule, e.g. "
                                      "epochs=15,augment=padded-crop, checks a proxy against it)")
    proxy.add_argument("--setting", action="append",
                       help="a proxy setting in the same form (repeatable; default: a grid of epochs, fraction, "
                            "width and schedule)")
    proxy.add_argument("--threshold", type=float_flag(-1, 1), default=0.7, help="Spearman with full training to qualify")
    proxy.add_argument("--open", help="comma list of open choices of the space (default: the search's)")
    proxy.add_argument("--batch-size", type=int_flag(1, BATCH_MAX), default=64)
    proxy.add_argument("--learning-rate", type=float_flag(0, low_open=True), default=0.05)
    proxy.add_argument("--seed", type=int_flag(0, SEED_MAX), default=0, help="draws the architectures and fixes the data split")
    proxy.add_argument("--shard", metavar="I/N", help="train only architectures I, I+N, ...: N processes share "
                                                      "one project dir")
    proxy.add_argument("--quiet", action="store_true")
    proxy.set_defaults(func=cmd_proxy)
