"""Saved state files: the format version each one carries, and the upgrade rules still needed.

Every JSON state file effscale writes and reads back (a search's ``search.json``, a family
run's ``state.json`` / ``results.json``, a training's ``run.json`` /
``results.json`` / checkpoint state, a fine-tuning's ``finetune.json``, a proxy file) holds
``format_version``. Reading one goes through :func:`read_state`: a file without a version
(written before saved formats were versioned) or with a version this effscale does not know is
refused with one line naming the file (a ``UserError``: exit 2), and an older known version is
upgraded in memory by the rules in :data:`UPGRADES`, in order. Version 1 is the first, so no
rule is needed yet; a format change adds ``(kind, old version) -> function`` there and bumps
:data:`FORMAT_VERSION`, instead of a shim at every reader.

>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "state.json")
>>> write_state(path, {"stages": {}})
>>> read_state(path, "family state")  # the content, in today's format (writers stamp the version)
{'stages': {}}
>>> from effscale.common.io import write_json
>>> write_json(path, {"stages": {}})
>>> read_state(path, "family state")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
effscale.common.errors.UserError: .../state.json has no format_version: a family state file written by an effscale from before saved formats were versioned; move it away and run again
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from effscale.common.errors import UserError
from effscale.common.io import read_json, write_json

FORMAT_VERSION = 1
KEY = "format_version"
KINDS = ("search", "family state", "family results", "training run", "training results",
         "training checkpoint", "fine-tuning", "proxy", "proxy check", "supernet")
# (kind, version) -> a function from a file at that version to one at the next
UPGRADES: dict[tuple[str, int], Callable[[dict], dict]] = {}


def stamped(data: Mapping) -> dict:
    """``data`` with the current ``format_version`` first (what every writer saves).

    >>> stamped({"a": 1})
    {'format_version': 1, 'a': 1}
    """
    return {KEY: FORMAT_VERSION, **{k: v for k, v in data.items() if k != KEY}}


def current(data, path: str, kind: str) -> dict:
    """The content of a loaded state file in today's format (``format_version`` left out: it
    belongs to the file, and :func:`write_state` stamps it), or a one-line refusal.

    >>> current({"format_version": 7}, "x.json", "search")
    Traceback (most recent call last):
    ...
    effscale.common.errors.UserError: x.json has format_version 7: a search file this effscale (formats 1..1) cannot read; it was written by a newer effscale
    """
    if kind not in KINDS:
        raise ValueError(f"unknown state file kind {kind!r}")
    if not isinstance(data, dict):
        raise UserError(f"{path} is not a {kind} file: expected a JSON object, got {type(data).__name__}")
    version = data.get(KEY)
    if version is None:
        raise UserError(f"{path} has no {KEY}: a {kind} file written by an effscale from before saved formats "
                        "were versioned; move it away and run again")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= FORMAT_VERSION:
        why = "it was written by a newer effscale" if isinstance(version, int) and not isinstance(
            version, bool) and version > FORMAT_VERSION else "not a version effscale writes"
        raise UserError(f"{path} has {KEY} {version!r}: a {kind} file this effscale (formats 1..{FORMAT_VERSION}) "
                        f"cannot read; {why}")
    for old in range(version, FORMAT_VERSION):
        rule = UPGRADES.get((kind, old))
        if rule is not None:
            data = rule(data)
    return {k: v for k, v in data.items() if k != KEY}


def read_state(path: str, kind: str) -> dict:
    """:func:`current` of the JSON file at ``path`` (an unreadable file raises as ``read_json``)."""
    return current(read_json(path), path, kind)


def write_state(path: str, data: Mapping) -> None:
    """Write ``data`` atomically as JSON with the current ``format_version``."""
    write_json(path, stamped(data))
