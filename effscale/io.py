"""Atomic writes: a reader sees the old file or the new one, never half of one.

Files get the permissions a plain ``open(path, "w")`` would give them under the user's umask
(0644 under the usual 022), not the owner-only 0600 of the temporary file they are written to.

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


def current_umask() -> int:
    """The process's umask, read without changing it where Linux shows it (thread-safe there).

    >>> old = os.umask(0o027); current_umask() == 0o027; _ = os.umask(old)
    True
    """
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def apply_umask(path: str, directory: bool = False) -> None:
    """Give ``path`` the mode a fresh file (0666) or folder (0777) gets under the umask."""
    os.chmod(path, (0o777 if directory else 0o666) & ~current_umask())


@contextlib.contextmanager
def atomic_path(path: str):
    """Yield a temporary path beside ``path``; on success rename it over ``path``.

    >>> target = os.path.join(tempfile.mkdtemp(), "model.txt")
    >>> old = os.umask(0o022)
    >>> with atomic_path(target) as temporary:
    ...     _ = open(temporary, "w").write("ok")
    >>> oct(os.stat(target).st_mode & 0o777); _ = os.umask(old)
    '0o644'
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    suffix = os.path.splitext(path)[1]  # keep the extension: keras picks the format by it
    handle, temporary = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=directory)
    os.close(handle)
    try:
        yield temporary
        if os.path.exists(temporary):
            apply_umask(temporary)
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
