"""Size limits checked before a network is planned or built.

A genotype such as ``mb_r1000000000_...`` parses (every token is well formed) but would
plan a billion blocks: effscale refuses it before any memory is spent. Three limits apply
to what will be built, each with a default far above the published families
(EfficientNet-L2 at 800 px has 480 M parameters and 140 blocks) and each raisable by the
user through an environment variable (or the ``effscale`` options ``--limit-blocks``,
``--limit-params``, ``--limit-macs``, which set them):

=========================  ==================================  ==============
limit                      environment variable                default
=========================  ==================================  ==============
blocks after depth scaling ``EFFSCALE_MAX_BLOCKS``             2,000
parameters (analytic)      ``EFFSCALE_MAX_PARAMS``             2e9
multiply-adds (analytic)   ``EFFSCALE_MAX_MULTIPLY_ADDS``      5e12
=========================  ==================================  ==============

>>> check_blocks(140)
>>> check_blocks(10**9)
Traceback (most recent call last):
...
effscale.common.errors.UserError: the network would have 1,000,000,000 blocks, more than the limit of 2,000; lower the repeats or the depth, or raise the limit with EFFSCALE_MAX_BLOCKS (effscale --limit-blocks N)
"""

from __future__ import annotations

import os

from effscale.common.errors import UserError

# name -> (environment variable, default, what it counts, CLI option)
LIMITS = {
    "blocks": ("EFFSCALE_MAX_BLOCKS", 2_000, "blocks", "--limit-blocks"),
    "params": ("EFFSCALE_MAX_PARAMS", 2e9, "parameters", "--limit-params"),
    "multiply_adds": ("EFFSCALE_MAX_MULTIPLY_ADDS", 5e12, "multiply-adds", "--limit-macs"),
}


def limit(name: str) -> float:
    """The current limit ``name`` (blocks, params or multiply_adds).

    >>> limit("params")
    2000000000.0
    """
    from effscale.common.checks import parse_float, shorten

    variable, default, _, option = LIMITS[name]
    text = os.environ.get(variable, "").strip()
    if not text:
        return default
    try:
        return parse_float(text, variable, 0, low_open=True)
    except UserError:
        raise UserError(f"{variable}={shorten(text)} must be a positive finite number ({option})") from None


def check_limits() -> None:
    """Read every limit once, so that a malformed environment variable is refused at the start.

    >>> os.environ["EFFSCALE_MAX_PARAMS"] = "inf"
    >>> check_limits()
    Traceback (most recent call last):
    ...
    effscale.common.errors.UserError: EFFSCALE_MAX_PARAMS='inf' must be a positive finite number (--limit-params)
    >>> del os.environ["EFFSCALE_MAX_PARAMS"]; check_limits()
    """
    for name in LIMITS:
        limit(name)


def _refuse(name: str, amount: float, what: str) -> None:
    variable, _, noun, option = LIMITS[name]
    bound = limit(name)
    if amount > bound:
        raise UserError(f"{what} would have {amount:,.0f} {noun}, more than the limit of {bound:,.0f}; "
                        f"{_ADVICE[name]}, or raise the limit with {variable} (effscale {option} N)")


_ADVICE = {"blocks": "lower the repeats or the depth",
           "params": "choose a smaller variant or genotype",
           "multiply_adds": "choose a smaller variant, resolution or genotype"}


def check_blocks(blocks: int, what: str = "the network") -> None:
    """Refuse a plan of more than ``EFFSCALE_MAX_BLOCKS`` blocks (before it is made)."""
    _refuse("blocks", blocks, what)


def check_cost(parameters: int, multiply_adds: int, what: str = "the network") -> None:
    """Refuse a network whose analytic parameters or multiply-adds exceed the limits.

    >>> check_cost(5_330_571, 390_000_000)
    >>> check_cost(3e9, 1)
    Traceback (most recent call last):
    ...
    effscale.common.errors.UserError: the network would have 3,000,000,000 parameters, more than the limit of 2,000,000,000; choose a smaller variant or genotype, or raise the limit with EFFSCALE_MAX_PARAMS (effscale --limit-params N)
    """
    _refuse("params", parameters, what)
    _refuse("multiply_adds", multiply_adds, what)
