"""Check that every file of an image folder decodes, before any training starts.

A single corrupt JPEG otherwise stops training mid-epoch with a TensorFlow traceback that
does not name the file. :func:`checked_images` decodes every file once with the same
``tf.io.decode_image`` the input pipeline uses, names the files that fail, and either
refuses the folder (the default) or drops them with a count (``--skip-corrupt-images``, or
``EFFSCALE_SKIP_CORRUPT_IMAGES=1``, or ``skip=True``).

Results are cached per file by size and modification time in
``$XDG_CACHE_HOME/effscale/image-check/`` (``~/.cache`` by default), so a rerun over an
unchanged folder decodes nothing. The cache is a convenience: when it cannot be written the
check still runs.

>>> import os, tempfile, numpy as np
>>> from PIL import Image
>>> folder = tempfile.mkdtemp()
>>> good = os.path.join(folder, "good.png")
>>> Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(good)
>>> other = os.path.join(folder, "other.png")
>>> Image.fromarray(np.ones((4, 4, 3), np.uint8)).save(other)
>>> bad = os.path.join(folder, "bad.jpg")
>>> _ = open(bad, "wb").write(b"not an image")
>>> checked_images(folder, [good, other, bad], np.array([0, 1, 1]), skip=True, quiet=True)[0] == [good, other]
True
"""

from __future__ import annotations

import hashlib
import os
import re
import sys

import numpy as np

from effscale.common.errors import UserError
from effscale.common.io import read_json_cache, write_json

SKIP_VARIABLE = "EFFSCALE_SKIP_CORRUPT_IMAGES"
_SHOWN = 3  # corrupt files named in the message; the rest are counted


def skip_requested() -> bool:
    """True when the user asked to skip corrupt images (``EFFSCALE_SKIP_CORRUPT_IMAGES=1``)."""
    return os.environ.get(SKIP_VARIABLE, "").strip().lower() in ("1", "true", "yes")


def _cache_path(folder: str) -> str:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    digest = hashlib.sha1(os.path.abspath(folder).encode()).hexdigest()[:16]
    return os.path.join(root, "effscale", "image-check", f"{digest}.json")




def _write_cache(path: str, entries: dict) -> None:
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_json(path, entries)
    except OSError:
        pass  # a read-only home: the check ran, only the next run is slower


def _decode_error(path: str) -> str | None:
    """None when ``path`` decodes as the input pipeline decodes it, else the reason."""
    import tensorflow as tf

    try:
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        if image.shape[0] == 0 or image.shape[1] == 0:
            return "decodes to an empty image"
    except (tf.errors.OpError, OSError, ValueError) as error:
        message = re.sub(r"\{\{function_node[^}]*\}\}\s*", "", getattr(error, "message", None) or str(error))
        return message.strip().splitlines()[0][:160] if message.strip() else type(error).__name__
    return None


def find_corrupt(folder: str, files: list[str]) -> dict[str, str]:
    """{file: reason} of the ``files`` that do not decode, using and refreshing the cache."""
    cache_path = _cache_path(folder)
    cache = read_json_cache(cache_path)
    fresh, corrupt = {}, {}
    for path in files:
        try:
            info = os.stat(path)
        except OSError as error:
            corrupt[path] = error.strerror or "cannot be read"
            continue
        stamp = f"{info.st_size}:{info.st_mtime_ns}"
        entry = cache.get(path)
        if isinstance(entry, list) and len(entry) == 2 and entry[0] == stamp:
            reason = entry[1]
        else:
            reason = _decode_error(path)
        fresh[path] = [stamp, reason]
        if reason is not None:
            corrupt[path] = reason
    if fresh != cache:
        _write_cache(cache_path, fresh)
    return corrupt


def checked_images(folder: str, files: list[str], labels: np.ndarray, skip: bool | None = None,
                   quiet: bool = False) -> tuple[list[str], np.ndarray]:
    """(files, labels) of an image folder with the corrupt files refused or, with ``skip``, dropped."""
    skip = skip_requested() if skip is None else skip
    corrupt = find_corrupt(folder, files)
    if not corrupt:
        return list(files), labels
    names = sorted(corrupt)
    shown = "; ".join(f"{name} ({corrupt[name]})" for name in names[:_SHOWN])
    more = f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
    if not skip:
        raise UserError(f"image folder {folder!r}: {len(names)} file(s) do not decode: {shown}{more}; "
                        "fix or remove them, or pass --skip-corrupt-images")
    keep = np.array([path not in corrupt for path in files], dtype=bool)
    kept_labels = np.asarray(labels)[keep]
    emptied = sorted(set(np.asarray(labels).tolist()) - set(kept_labels.tolist()))
    if emptied:
        raise UserError(f"image folder {folder!r}: every image of class index(es) {emptied} is corrupt ({shown}{more})")
    if len(set(kept_labels.tolist())) < 2:
        raise UserError(f"image folder {folder!r}: fewer than two classes keep an image that decodes")
    if not quiet:
        print(f"effscale: skipping {len(names)} corrupt image(s) of {len(files)} in {folder}: {shown}{more}",
              file=sys.stderr)
    return [path for path, ok in zip(files, keep) if ok], kept_labels
