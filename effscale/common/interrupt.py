"""Ctrl-C and SIGTERM end a command with one line and a resumable state.

Every state file effscale writes is written atomically, so stopping between any two Python
statements leaves the previous version or the new one. :func:`interruptible` turns
SIGTERM into the same clean stop as Ctrl-C, and :func:`scoped_environment` sets environment
variables for one command (child processes inherit them) and restores them afterwards.

>>> import os
>>> with scoped_environment({"EFFSCALE_EXAMPLE": "1"}):
...     os.environ["EFFSCALE_EXAMPLE"]
'1'
>>> "EFFSCALE_EXAMPLE" in os.environ
False
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading

MESSAGE = "interrupted; rerun the same command to resume"
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + the signal number, as shells report


class Interrupted(BaseException):
    """Raised in the main thread on Ctrl-C or SIGTERM; ``code`` is the exit status."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.code = EXIT_CODES.get(signum, 128 + int(signum))


_REQUESTED: list[int] = []  # signals received inside interruptible(), in order


def reraise_if_interrupted() -> None:
    """Raise :class:`Interrupted` again if a signal arrived inside :func:`interruptible`.

    A signal that lands while TensorFlow's C++ code runs can surface as another exception
    (seen: ``SystemError: bad argument to internal function``); code that catches errors
    broadly (Keras Tuner marks the trial FAILED and goes on) calls this first, so the command
    still stops and resumes instead of recording a failure.

    >>> reraise_if_interrupted() is None
    True
    """
    if _REQUESTED:
        raise Interrupted(_REQUESTED[-1])


@contextlib.contextmanager
def interruptible():
    """Within the block, SIGINT and SIGTERM raise :class:`Interrupted` (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        _REQUESTED.append(signum)
        raise Interrupted(signum)

    def unraisable(report, default=sys.unraisablehook):
        # Python ignores an exception raised inside a finalizer or weakref callback and prints
        # its traceback: an Interrupted that landed there is kept in _REQUESTED instead and
        # raised again at the next check (reraise_if_interrupted), without the traceback.
        if not isinstance(report.exc_value, Interrupted):
            default(report)

    _REQUESTED.clear()
    previous = {number: signal.signal(number, stop) for number in EXIT_CODES}
    previous_hook, sys.unraisablehook = sys.unraisablehook, unraisable
    try:
        yield
        reraise_if_interrupted()  # its Interrupted was swallowed (raised inside an ignored callback)
    except KeyboardInterrupt:  # raised by code that installed Python's default handler again
        raise Interrupted(signal.SIGINT) from None
    finally:
        _REQUESTED.clear()
        sys.unraisablehook = previous_hook
        for number, handler in previous.items():
            signal.signal(number, handler)


@contextlib.contextmanager
def scoped_environment(values: dict[str, str]):
    """Set ``values`` in ``os.environ`` for the block, then restore what was there."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
