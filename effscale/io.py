"""Atomic writes: a reader sees the old file or the new one, never half of one.

>>> import tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "state.json")
>>> write_json(path, {"epoch": 3})
>>> read_json(path)
{'epoch': 3}
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile


@contextlib.contextmanager
def atomic_path(path: str):
    """Yield a temporary path beside ``path``; on success rename it over ``path``."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    suffix = os.path.splitext(path)[1]  # keep the extension: keras picks the format by it
    handle, temporary = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=directory)
    os.close(handle)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def write_text(path: str, text: str) -> None:
    with atomic_path(path) as temporary:
        with open(temporary, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())


def write_json(path: str, data) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path: str):
    with open(path) as handle:
        return json.load(handle)
