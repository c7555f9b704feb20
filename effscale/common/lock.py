"""One process at a time per output folder: a ``search`` or ``family`` that finds its folder in
use by another one refuses with one line instead of writing the same files at the same time.

The lock is ``fcntl.flock`` on ``FOLDER/.effscale.lock``. The kernel drops it when its process
ends in any way (SIGKILL included), so a killed run never leaves a folder stuck; the file itself
stays behind, holding the last owner's process id for the message, and means nothing on its own.

>>> import tempfile
>>> folder = tempfile.mkdtemp()
>>> with folder_lock(folder, "search"):
...     with folder_lock(folder, "search"):  # doctest: +ELLIPSIS
...         pass
Traceback (most recent call last):
...
effscale.common.errors.UserError: ... is in use by another effscale search (process ...); wait for it to end, or stop it and rerun this command to resume
>>> with folder_lock(folder, "search"):  # free again once its holder let go
...     pass
"""

from __future__ import annotations

import contextlib
import fcntl
import os

from effscale.common.errors import UserError

LOCK_NAME = ".effscale.lock"


@contextlib.contextmanager
def folder_lock(folder: str, what: str):
    """Hold the lock of ``folder`` (created if need be) inside the block; UserError when another
    process (or another block of this one) holds it."""
    from effscale.common.io import current_umask, write_failure

    path = os.path.join(folder, LOCK_NAME)
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o666 & ~current_umask())
    except OSError as error:
        failure = write_failure(path, error)
        if failure is None:
            raise
        raise failure from None
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(descriptor, 32, 0).decode(errors="replace").strip() or "unknown"
            raise UserError(f"{folder} is in use by another effscale {what} (process {holder}); wait for it to "
                            "end, or stop it and rerun this command to resume") from None
        try:  # who holds it, for the message of the next one (a full disk leaves it empty)
            os.ftruncate(descriptor, 0)
            os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass
        try:
            yield
        finally:
            fcntl.flock(descriptor, fcntl.LOCK_UN)
    finally:
        os.close(descriptor)
