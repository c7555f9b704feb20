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
