"""One validation layer for the numbers a user gives: CLI flags, config keys, environment limits.

Every check names what it checks, says what was expected and echoes the value shortened to one
line, so an absurd input (a 5000-digit integer, a superscript digit, ``inf``, ``nan``, a 100 KB
string) is one :class:`~effscale.common.errors.UserError` line, never a traceback or a wall of
text. Text is parsed strictly: ASCII digits only (Python's ``int`` also reads ``'٣'``), at most
:data:`MAX_DIGITS` digits (Python's own limit of 4300 raises a ValueError whose text differs),
no underscores, and floats must be finite.

>>> parse_int("42", "--seed", 0, 2**32 - 1)
42
>>> parse_int("-1", "--seed", 0, 2**32 - 1)
Traceback (most recent call last):
...
effscale.common.errors.UserError: --seed must be an integer in 0..4294967295, got '-1'
>>> parse_int("9" * 5000, "--trials", 1)
Traceback (most recent call last):
...
effscale.common.errors.UserError: --trials must be an integer of at least 1, got '99999999999999999999999999999999999999...' (5000 characters)
>>> parse_float("inf", "--learning-rate", 0, low_open=True)
Traceback (most recent call last):
...
effscale.common.errors.UserError: --learning-rate must be a finite number above 0, got 'inf'
>>> check_int(3.0, "search.trials", 1)
Traceback (most recent call last):
...
effscale.common.errors.UserError: search.trials must be an integer of at least 1, got 3.0
"""

from __future__ import annotations

import math
import re

from effscale.common.errors import UserError

MAX_DIGITS = 30           # integers a user may write: up to 10**30, far above any sane count
MAX_NUMBER_TEXT = 64      # characters of a number written as text
ECHO = 40                 # characters of an echoed value
SEED_MAX = 2**32 - 1      # numpy's and Keras' seed range
BATCH_MAX = 2**20         # images per batch: far above the largest published batch (65,536)
EPOCHS_MAX = 100_000
COUNT_MAX = 1_000_000     # trials, population sizes, architectures, seeds, samples ...
CLASSES_MAX = 1_000_000   # classes of a classifier head

_INT = re.compile(r"[+-]?[0-9]+", re.ASCII)
_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)


def shorten(value, limit: int = ECHO) -> str:
    """``repr`` of ``value`` on one line, cut to about ``limit`` characters with the full length said.

    >>> shorten("abc")
    "'abc'"
    >>> shorten("x" * 1000, limit=10)
    "'xxxxxxxxx...' (1000 characters)"
    >>> shorten(10**5000)
    'an integer of about 5001 digits'
    >>> shorten("two\\nlines")
    "'two\\\\nlines'"
    """
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit - 1]!r}"[:-1] + "...' " + f"({len(value)} characters)"
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 3 * limit:
        return f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"  # str() stops at 4300
    try:
        text = repr(value)
    except ValueError:  # a container holding such an integer
        return f"a {type(value).__name__} too large to show"
    if len(text) > limit + 2:
        return text[:limit] + f"... ({len(text)} characters)"
    return text


def one_line(message, limit: int = 600) -> str:
    """``message`` as one line of at most about ``limit`` characters: line breaks become ``' / '``
    and an over-long middle (a 100 KB genotype echoed by a parser) is cut, with the length said.

    >>> one_line("bad genotype 'x" + "y" * 5000 + "': expected mb, fmb or ds", limit=100)
    "bad genotype 'xyyyyyyyyyyyyyyyyyy ... (5040 characters) ...yyyyyyyyyyyyyyyy': expected mb, fmb or ds"
    >>> one_line("first\\nsecond")
    'first / second'
    """
    text = " / ".join(part.strip() for part in str(message).splitlines() if part.strip())
    if len(text) <= limit:
        return text
    head, tail = limit * 1 // 3, limit * 2 // 3 - 25
    return f"{text[:head]} ... ({len(text)} characters) ...{text[-tail:]}"


def _range_words(kind: str, low, high, low_open: bool = False) -> str:
    say = str if kind == "an integer" else "{:g}".format
    if low is not None and high is not None:
        return f"{kind} in ({say(low)}, {say(high)}]" if low_open else f"{kind} in {say(low)}..{say(high)}"
    if low is not None:
        return f"{kind} above {say(low)}" if low_open else f"{kind} of at least {say(low)}"
    if high is not None:
        return f"{kind} of at most {say(high)}"
    return kind


def check_int(value, name: str, low: int | None = None, high: int | None = None) -> int:
    """``value`` if it is an int (not a bool) within ``low..high``; else a UserError naming ``name``.

    >>> check_int(5, "training.batch_size", 1, BATCH_MAX)
    5
    >>> check_int("8", "search.population_size", 2)
    Traceback (most recent call last):
    ...
    effscale.common.errors.UserError: search.population_size must be an integer of at least 2, got '8'
    """
    if not (isinstance(value, int) and not isinstance(value, bool)
            and (low is None or value >= low) and (high is None or value <= high)):
        raise UserError(f"{name} must be {_range_words('an integer', low, high)}, got {shorten(value)}")
    return value


def check_float(value, name: str, low: float | None = None, high: float | None = None,
                low_open: bool = False) -> float:
    """``float(value)`` if it is a finite int or float (not a bool) within the range; ``low_open``
    excludes ``low`` itself.

    >>> check_float(0.5, "validation_fraction", 0, 1, low_open=True)
    0.5
    >>> check_float(float("nan"), "target", 0, low_open=True)
    Traceback (most recent call last):
    ...
    effscale.common.errors.UserError: target must be a finite number above 0, got nan
    """
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        try:
            number = float(value)
        except OverflowError:  # an int beyond the float range
            ok = False
        else:
            ok = (math.isfinite(number) and (low is None or number > low or (number == low and not low_open))
                  and (high is None or number <= high))
    if not ok:
        raise UserError(f"{name} must be {_range_words('a finite number', low, high, low_open)}, "
                        f"got {shorten(value)}")
    return number


def parse_int(text, name: str, low: int | None = None, high: int | None = None) -> int:
    """An integer written as text (ASCII digits, at most :data:`MAX_DIGITS`), within ``low..high``.

    >>> parse_int(" 7 ", "--epochs", 1)
    7
    >>> parse_int("²", "--shard", 0)
    Traceback (most recent call last):
    ...
    effscale.common.errors.UserError: --shard must be an integer of at least 0, got '²'
    """
    if isinstance(text, int) and not isinstance(text, bool):
        return check_int(text, name, low, high)
    stripped = text.strip() if isinstance(text, str) else None
    if stripped is None or not _INT.fullmatch(stripped) or len(stripped.lstrip("+-")) > MAX_DIGITS:
        raise UserError(f"{name} must be {_range_words('an integer', low, high)}, got {shorten(text)}")
    try:
        return check_int(int(stripped), name, low, high)
    except UserError:
        raise UserError(f"{name} must be {_range_words('an integer', low, high)}, got {shorten(text)}") from None


def is_number_text(text: str) -> bool:
    """Whether ``text`` is a number written in ASCII decimal or exponent form (what
    :func:`parse_float` reads; Python's ``float`` also takes other scripts' digits and inf / nan).

    >>> is_number_text(" 2e6"), is_number_text("\u0663"), is_number_text("nan")
    (True, False, False)
    """
    return bool(_FLOAT.fullmatch(text.strip()))


def parse_float(text, name: str, low: float | None = None, high: float | None = None,
                low_open: bool = False) -> float:
    """A finite number written as text (ASCII, decimal or exponent form; no ``inf`` / ``nan``).

    >>> parse_float("2e6", "--target", 0, low_open=True)
    2000000.0
    >>> parse_float("1e400", "--width", 0, low_open=True)
    Traceback (most recent call last):
    ...
    effscale.common.errors.UserError: --width must be a finite number above 0, got '1e400'
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return check_float(text, name, low, high, low_open)
    stripped = text.strip() if isinstance(text, str) else None
    if stripped is None or len(stripped) > MAX_NUMBER_TEXT or not _FLOAT.fullmatch(stripped):
        raise UserError(f"{name} must be {_range_words('a finite number', low, high, low_open)}, "
                        f"got {shorten(text)}")
    try:
        return check_float(float(stripped), name, low, high, low_open)
    except UserError:
        raise UserError(f"{name} must be {_range_words('a finite number', low, high, low_open)}, "
                        f"got {shorten(text)}") from None


def int_flag(low: int | None = None, high: int | None = None):
    """An argparse ``type=`` for an integer flag: a bad value is argparse's one-line usage error
    (exit 2) naming the flag, before the command runs.

    >>> int_flag(0, SEED_MAX)("12")
    12
    """
    import argparse

    def parse(text):
        try:
            return parse_int(text, "it", low, high)
        except UserError as error:
            raise argparse.ArgumentTypeError(str(error).replace("it must be", "expected", 1)) from None

    parse.__name__ = "integer"
    return parse


def float_flag(low: float | None = None, high: float | None = None, low_open: bool = False):
    """An argparse ``type=`` for a finite number flag (see :func:`int_flag`).

    >>> float_flag(0, 1)("0.25")
    0.25
    """
    import argparse

    def parse(text):
        try:
            return parse_float(text, "it", low, high, low_open)
        except UserError as error:
            raise argparse.ArgumentTypeError(str(error).replace("it must be", "expected", 1)) from None

    parse.__name__ = "number"
    return parse
