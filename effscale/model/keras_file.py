"""Load a ``.keras`` file with a message that says what is wrong with it.

Keras reports a truncated ``.keras`` archive as "File not found"; :func:`load_keras_model`
checks the archive first and says "not a valid Keras file" instead.

>>> import tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "model.keras")
>>> _ = open(path, "wb").write(b"PK\\x03\\x04 truncated")
>>> keras_file_problem(path)
'is not a valid Keras file (not a complete zip archive: truncated or another format)'
>>> keras_file_problem(path + ".missing")
'does not exist'
"""

from __future__ import annotations

import os
import zipfile

from effscale.common.errors import UserError


def keras_file_problem(path: str) -> str | None:
    """None when ``path`` is a complete ``.keras`` archive, else what is wrong with it."""
    if not os.path.exists(path):
        return "does not exist"
    if not os.path.isfile(path):
        return "is not a file"
    if not zipfile.is_zipfile(path):
        return "is not a valid Keras file (not a complete zip archive: truncated or another format)"
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            broken = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        return f"is not a valid Keras file (damaged zip archive: {error})"
    if broken is not None:
        return f"is not a valid Keras file (member {broken!r} is damaged)"
    if "config.json" not in names:
        return "is not a valid Keras file (no config.json inside)"
    return None


def load_keras_model(path: str, what: str = "model file"):
    """``keras.saving.load_model(path, compile=False)``, or a one-line UserError."""
    path = os.fspath(path)
    problem = keras_file_problem(path)
    if problem is not None:
        raise UserError(f"{what} {path!r} {problem}")
    import keras

    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"{what} {path!r} does not load as a Keras model: {first}") from None
