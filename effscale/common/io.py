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
import errno
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


# errno -> what a failed write says (the causes outside effscale: OutputError, exit 1)
_WRITE_FAILURES = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
                   errno.EFBIG: "file too large for the file system", errno.EACCES: "permission denied",
                   errno.EPERM: "operation not permitted", errno.EROFS: "read-only file system"}
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
RESUME_ADVICE = "rerun the same command to resume from the last complete state"


def size_text(count: float) -> str:
    """Bytes in the unit a person reads.

    >>> size_text(512), size_text(272_096), size_text(3.5e9)
    ('512 B', '266 KiB', '3.3 GiB')
    """
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= scale:
            return f"{count / scale:.2g} {unit}" if count < 10 * scale else f"{count / scale:.0f} {unit}"
    return f"{count:.0f} B"


def free_space(path: str) -> int | None:
    """Bytes free for this user on the file system of ``path`` (or its nearest existing parent)."""
    import shutil

    folder = os.path.abspath(path)
    while folder and not os.path.isdir(folder):
        folder = os.path.dirname(folder)
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def write_failure(path: str, error: BaseException, needed: int | None = None):
    """The one-line :class:`OutputError` for ``error`` while writing ``path``, or None when the
    error is not one of a full, unwritable or read-only disk (a bug keeps its traceback).
    Native writers (HDF5) raise errors without an errno: those count as a full disk when the
    disk is in fact (nearly) full.

    >>> write_failure("/out/state.json", OSError(errno.ENOSPC, "No space left on device"), needed=2048)  # doctest: +ELLIPSIS
    OutputError('no space left on device writing /out/state.json (needs about 2 KiB, ... free); free some space and rerun the same command to resume from the last complete state')
    >>> write_failure("/out/state.json", ValueError("bug")) is None
    True
    """
    from effscale.common.errors import OutputError

    code = getattr(error, "errno", None)
    if code not in _WRITE_FAILURES and isinstance(error, (OSError, RuntimeError)):
        for known in _NO_SPACE:  # h5py: "[Errno 28] Can't close file (... errno = 28 ...)"
            if f"errno = {known}" in str(error) or f"[Errno {known}]" in str(error):
                code = known
        free = free_space(path)
        if code is None and free is not None and free < max(1 << 20, needed or 0):
            code = errno.ENOSPC
    if code not in _WRITE_FAILURES:
        return None
    if code in _NO_SPACE:
        free = free_space(path)
        amounts = [f"needs about {size_text(needed)}"] if needed else []
        amounts += [f"{size_text(free)} free"] if free is not None else []
        detail = f" ({', '.join(amounts)})" if amounts else ""
        return OutputError(f"{_WRITE_FAILURES[code]} writing {path}{detail}; free some space and {RESUME_ADVICE}")
    return OutputError(f"{_WRITE_FAILURES[code]} writing {path}; make its folder writable and {RESUME_ADVICE}")


def ensure_space(path: str, needed: int) -> None:
    """Refuse to start writing ``needed`` bytes to ``path`` when its disk has less free: some
    native writers (HDF5 through h5py) crash the process when the disk fills under them.

    >>> ensure_space(tempfile.mkdtemp(), 1)
    >>> ensure_space(tempfile.mkdtemp(), 10**30)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    effscale.common.errors.OutputError: no space left on device writing /tmp/... (needs about ... GiB, ... free); free some space and rerun the same command to resume from the last complete state
    """
    free = free_space(path)
    if free is not None and free < needed:
        raise write_failure(path, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), needed=needed)


@contextlib.contextmanager
def atomic_path(path: str, needed: int | None = None):
    """Yield a temporary path beside ``path``; on success rename it over ``path``. A write that
    fails because the disk is full or unwritable is an :class:`~effscale.common.errors.OutputError`
    naming ``path`` (one line, exit 1 in the CLI), and the temporary file is removed either way.
    ``needed`` (bytes, an estimate) is checked against the free space first.

    >>> target = os.path.join(tempfile.mkdtemp(), "model.txt")
    >>> old = os.umask(0o022)
    >>> with atomic_path(target) as temporary:
    ...     _ = open(temporary, "w").write("ok")
    >>> oct(os.stat(target).st_mode & 0o777); _ = os.umask(old)
    '0o644'
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    # keep the extension: keras picks the format by it (and save_weights wants .weights.h5)
    suffix = ".weights.h5" if path.endswith(".weights.h5") else os.path.splitext(path)[1]
    if needed:
        ensure_space(path, needed)
    try:
        handle, temporary = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=directory)
        os.close(handle)
    except OSError as error:
        failure = write_failure(path, error, needed)
        if failure is None:
            raise
        raise failure from None
    try:
        yield temporary
        if os.path.exists(temporary):
            apply_umask(temporary)
        os.replace(temporary, path)
    except (OSError, RuntimeError) as error:
        from effscale.common.errors import OutputError

        if isinstance(error, OutputError):
            raise
        written = os.path.getsize(temporary) if os.path.exists(temporary) else 0
        failure = write_failure(path, error, needed or written or None)
        if failure is None:
            raise
        raise failure from None
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


def read_json_cache(path: str) -> dict:
    """A JSON object cache file's contents, or {} when it is missing, unreadable or not an object
    (a cache is rebuilt, never trusted).

    >>> read_json_cache("/nonexistent/cache.json")
    {}
    """
    try:
        data = read_json(path)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def plain_json(value):
    """A JSON round-trippable copy of ``value`` (the one normaliser): dataclasses become dicts,
    tuples lists, numpy scalars and arrays Python numbers and lists, anything else its ``str``.

    >>> import numpy as np
    >>> plain_json({"a": (1, np.float32(0.5)), "b": np.arange(2), 3: None})
    {'a': [1, 0.5], 'b': [0, 1], '3': None}
    """
    import dataclasses

    def default(item):
        if dataclasses.is_dataclass(item) and not isinstance(item, type):
            return dataclasses.asdict(item)
        return item.tolist() if hasattr(item, "tolist") else str(item)

    return json.loads(json.dumps(value, default=default))


class JsonSettings:
    """``to_dict`` / ``from_dict`` / ``to_json`` / ``from_json`` / ``replace`` for a frozen
    dataclass of settings; ``from_dict`` refuses unknown keys. ``_json_name`` names it in errors.

    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Demo(JsonSettings):
    ...     _json_name = "demo"
    ...     size: int = 1
    >>> Demo.from_json(Demo(size=3).to_json()), Demo().replace(size=2).size
    (Demo(size=3), 2)
    >>> Demo.from_dict({"sise": 3})
    Traceback (most recent call last):
    ...
    effscale.common.errors.UserError: unknown demo key(s) ['sise']: expected some of ['size']
    """

    _json_name = "settings"

    def to_dict(self) -> dict:
        import dataclasses

        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict):
        import dataclasses

        from effscale.common.errors import UserError

        if not isinstance(data, dict):
            raise UserError(f"a {cls._json_name} must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(f"unknown {cls._json_name} key(s) {unknown}: expected some of {sorted(known)}")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str):
        from effscale.common.errors import UserError

        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as error:
            raise UserError(f"{cls._json_name} JSON does not parse: {error}") from None

    def replace(self, **changes):
        import dataclasses

        return dataclasses.replace(self, **changes)
