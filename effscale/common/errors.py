"""Error types that separate a user's bad input from a bug in effscale.

The CLI turns a :class:`UserError` into a one-line message and exit code 2;
anything else is a bug and keeps its traceback.
"""


class UserError(ValueError):
    """Bad input from the user: a malformed genotype, an unknown variant, a bad path.

    >>> isinstance(UserError("bad"), ValueError)
    True
    """


class OutputError(OSError):
    """A write of state or results failed for a reason outside effscale: no space left on the
    device, a quota, a read-only or unwritable folder. The CLI prints it as one line and exits
    with code 1 (the input was fine; rerun the same command once the cause is fixed).

    >>> str(OutputError("no space left on device writing /x/state.json"))
    'no space left on device writing /x/state.json'
    """
