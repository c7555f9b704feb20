"""Error types that separate a user's bad input from a bug in effscale.

The CLI turns a :class:`UserError` into a one-line message and exit code 2;
anything else is a bug and keeps its traceback.
"""


class UserError(ValueError):
    """Bad input from the user: a malformed genotype, an unknown variant, a bad path.

    >>> isinstance(UserError("bad"), ValueError)
    True
    """
