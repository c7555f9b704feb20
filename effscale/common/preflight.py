"""Checks every command runs before it creates anything: a rejected command leaves no
file or folder behind.

>>> import tempfile, os
>>> check_output_folder(os.path.join(tempfile.mkdtemp(), "new", "run"))
>>> check_output_folder("/proc/effscale-run")
Traceback (most recent call last):
...
effscale.common.errors.UserError: --out '/proc/effscale-run': cannot create it, '/proc' is not writable (...)
"""

from __future__ import annotations

import os
import tempfile

from effscale.common.errors import UserError


def check_output_folder(path: str, flag: str = "--out") -> None:
    """Refuse an output folder that is a file, or that cannot be created or written.

    The check creates and removes a probe in the nearest existing folder, so it sees what
    permission bits alone do not (read-only mounts, /proc, running as root).
    """
    path = os.path.abspath(os.fspath(path))
    if os.path.exists(path) and not os.path.isdir(path):
        raise UserError(f"{flag} {path!r} is a file, not a folder")
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise UserError(f"{flag} {path!r}: cannot create it, {existing!r} is a file")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".effscale-probe-", dir=existing))
    except OSError as error:
        reason = error.strerror or type(error).__name__
        if existing == path:
            raise UserError(f"{flag} {path!r} is not writable ({reason})") from None
        raise UserError(f"{flag} {path!r}: cannot create it, {existing!r} is not writable ({reason})") from None


def check_dataset(data: "DataSpec | str", batch_size: int = 1) -> int:
    """The number of classes of ``data`` (a :class:`~effscale.data.spec.DataSpec` or a source name)
    once it resolves (image folders: every file decodes);
    UserError when it does not resolve, has fewer than two classes or fewer training images than
    ``batch_size``.

    >>> check_dataset("digits")
    10
    >>> check_dataset("/no/such/folder")
    Traceback (most recent call last):
    ...
    effscale.common.errors.UserError: unknown dataset '/no/such/folder': expected 'digits', ... or an image folder path
    """
    from effscale.data.pipeline import DataSpec, load_data

    spec = DataSpec.of(data).replace(resolution=8)
    splits = load_data(spec, batch_size=batch_size, drop_remainder=True, cache=False)
    if splits.num_classes < 2:
        raise UserError(f"dataset {spec.source!r} has {splits.num_classes} class; a classifier needs two or more")
    return splits.num_classes
