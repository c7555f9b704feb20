"""MNIST and Fashion-MNIST from the files wherever they are installed; never downloads.

Both datasets ship as four IDX files (the format of LeCun's MNIST page: a magic number that
gives the element type and the number of dimensions, the dimensions as big-endian 32-bit
integers, then the elements), gzipped or not::

    train-images-idx3-ubyte.gz  train-labels-idx1-ubyte.gz  (60,000 images: train + validation)
    t10k-images-idx3-ubyte.gz   t10k-labels-idx1-ubyte.gz   (10,000 images: the test split)

:func:`locate` finds a dataset in this order, the first hit wins:

1. ``data_dir`` when given (the four files in it or in ``data_dir/fashion-mnist``, ``.../mnist``);
2. the Debian package ``dataset-fashion-mnist``: ``/usr/share/datasets/fashion-mnist``
   (Debian packages no MNIST);
3. Keras' dataset cache, where ``keras.datasets`` leaves its downloads: ``$KERAS_HOME/datasets``,
   ``~/.keras/datasets``, ``/tmp/.keras/datasets`` (``fashion-mnist/`` holds the four IDX files,
   MNIST is one ``mnist.npz``);
4. a prepared tensorflow-datasets copy (``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``).

>>> import tempfile
>>> folder = tempfile.mkdtemp()
>>> write_idx(os.path.join(folder, "labels-idx1-ubyte"), np.array([3, 1, 4], dtype=np.uint8))
>>> read_idx(os.path.join(folder, "labels-idx1-ubyte")).tolist()
[3, 1, 4]
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib

import numpy as np

from effscale.common.errors import UserError

# IDX element type codes -> big-endian numpy types
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
IDX_CODES = {np.dtype(t).newbyteorder("=").name: code for code, t in IDX_TYPES.items()}
PARTS = (("train", "images"), ("train", "labels"), ("t10k", "images"), ("t10k", "labels"))
DEBIAN_FOLDER = "/usr/share/datasets"
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                   "Bag", "Ankle boot"]
DATASETS = {  # name -> (folder names, class names, how to install)
    "fashion_mnist": (("fashion-mnist", "fashion_mnist"), FASHION_CLASSES,
                      "install it with `apt install dataset-fashion-mnist`, or pass idx:FOLDER "
                      "(a folder holding the four IDX files)"),
    "mnist": (("mnist",), [str(i) for i in range(10)],
              "fetch it once with `python -c 'import keras; keras.datasets.mnist.load_data()'` "
              "(writes ~/.keras/datasets/mnist.npz), prepare tensorflow-datasets' mnist, "
              "or pass idx:FOLDER (a folder holding the four IDX files)"),
}


def _open(path: str):
    """A binary stream of ``path``'s contents, gunzipped when it is gzip whatever its name, and
    whether it is (a gzip stream's size is known only by reading it)."""
    try:
        handle = open(path, "rb")
        gzipped = handle.read(2) == b"\x1f\x8b"
        handle.seek(0)
    except OSError as error:
        raise UserError(f"cannot read {path!r}: {error.strerror or error}") from None
    return (gzip.GzipFile(fileobj=handle, mode="rb") if gzipped else handle), handle, gzipped


def _read_at_most(stream, size: int, path: str, gzipped: bool) -> bytes:
    """Up to ``size`` bytes, read in pieces (a header's claim is never allocated at once)."""
    pieces, left = [], size
    try:
        while left > 0:
            piece = stream.read(min(left, 1 << 24))
            if not piece:
                break
            pieces.append(piece)
            left -= len(piece)
    except (OSError, EOFError, zlib.error) as error:
        if gzipped:
            raise UserError(f"{path!r} is a damaged or truncated gzip file ({error})") from None
        raise UserError(f"cannot read {path!r}: {getattr(error, 'strerror', None) or error}") from None
    return b"".join(pieces)


def read_idx(path: str) -> np.ndarray:
    """The array in an IDX file (gzipped or not), checked against its own header. The header's
    shape is checked against the file's size before any memory is spent on it: a header that
    declares 2**31 labels or a 65536**4 shape in a file of a few bytes is one UserError, and so
    is a gzip file that inflates beyond what its header declares (it is read only that far).

    >>> read_idx(__file__)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    effscale.common.errors.UserError: '...idx.py' is not an IDX file: magic number 0x2222224d (expected ...)
    """
    stream, handle, gzipped = _open(path)
    with handle, stream:
        data = _read_at_most(stream, 4, path, gzipped)
        if len(data) < 4:
            raise UserError(f"{path!r} is not an IDX file: {len(data)} bytes, shorter than the 4-byte magic number")
        zeros, code, ndim = data[:2], data[2], data[3]
        if zeros != b"\0\0" or code not in IDX_TYPES or ndim == 0:
            magic = struct.unpack(">I", data[:4])[0]
            raise UserError(f"{path!r} is not an IDX file: magic number {magic:#010x} "
                            "(expected 0x000008NN for unsigned bytes in NN dimensions)")
        header = 4 + 4 * ndim
        data += _read_at_most(stream, header - 4, path, gzipped)
        if len(data) < header:
            raise UserError(f"{path!r} is truncated: {len(data)} bytes, its header alone needs {header}")
        shape = struct.unpack(f">{ndim}I", data[4:header])
        dtype = np.dtype(IDX_TYPES[code])
        expected = header + math.prod(shape) * dtype.itemsize  # Python ints: no int64 wrap-around
        if gzipped:  # read one byte past the claim: enough to tell "longer", never more
            data += _read_at_most(stream, expected - header + 1, path, gzipped)
            size = len(data)
        else:
            size = os.fstat(handle.fileno()).st_size
        if size != expected:
            problem = "truncated" if size < expected else "longer than its header says"
            said = f"{size} bytes" if size <= expected or not gzipped else f"more than {expected} bytes"
            raise UserError(f"{path!r} is {problem}: {said}, its header "
                            f"(shape {'x'.join(map(str, shape))}) needs {expected}")
        if not gzipped:
            data += _read_at_most(stream, expected - header, path, gzipped)
            if len(data) != expected:  # the file changed while it was read
                raise UserError(f"{path!r} is truncated: {len(data)} bytes, its header needs {expected}")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str, array: np.ndarray, compress: bool | None = None) -> None:
    """Write ``array`` as an IDX file (gzipped when ``compress``, default: the name ends in .gz).

    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "x-idx3-ubyte.gz")
    >>> write_idx(path, np.zeros((2, 3, 3), dtype=np.uint8))
    >>> read_idx(path).shape
    (2, 3, 3)
    """
    array = np.asarray(array)
    code = IDX_CODES.get(array.dtype.name)
    if code is None:
        raise ValueError(f"IDX has no element type for {array.dtype}")
    payload = struct.pack(f">BBBB{array.ndim}I", 0, 0, code, array.ndim, *array.shape)
    payload += array.astype(IDX_TYPES[code]).tobytes()
    compress = path.endswith(".gz") if compress is None else compress
    with open(path, "wb") as handle:
        handle.write(gzip.compress(payload, mtime=0) if compress else payload)


def _idx_file(folder: str, prefix: str, kind: str) -> str | None:
    """The path of e.g. train-images-idx3-ubyte[.gz] (or the train-images.idx3-ubyte spelling)."""
    rank = 3 if kind == "images" else 1
    for separator in ("-", "."):
        for suffix in (".gz", ""):
            path = os.path.join(folder, f"{prefix}-{kind}{separator}idx{rank}-ubyte{suffix}")
            if os.path.isfile(path):
                return path
    return None


def idx_files(folder: str) -> dict | None:
    """``{("train", "images"): path, ...}`` when ``folder`` holds all four IDX files, else None."""
    found = {part: _idx_file(folder, *part) for part in PARTS}
    return found if all(found.values()) else None


def _images_and_labels(images_path: str, labels_path: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] not in (1, 3)):
        raise UserError(f"{images_path!r} holds an array of shape {images.shape}, not images "
                        "(N x height x width, or N x height x width x 1|3)")
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise UserError(f"{labels_path!r} holds {labels.dtype} of shape {labels.shape}, not one integer label per image")
    if len(images) != len(labels):
        raise UserError(f"{images_path!r} holds {len(images)} images but {labels_path!r} "
                        f"holds {len(labels)} labels: the files do not belong together")
    if images.ndim == 3:
        images = images[..., None]
    return images, labels.astype(np.int32)


def read_idx_folder(folder: str) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """``((train images, labels), (test images, labels))`` of a folder holding the four IDX
    files; images are (N, H, W, 1) (or 3 channels), labels int32."""
    files = idx_files(folder)
    if files is None:
        missing = [f"{p}-{k}-idx{3 if k == 'images' else 1}-ubyte[.gz]" for p, k in PARTS if not _idx_file(folder, p, k)]
        where = f"folder {folder!r} does not exist" if not os.path.isdir(folder) else f"{folder!r} lacks {', '.join(missing)}"
        raise UserError(f"no IDX dataset at {folder!r}: {where}")
    train = _images_and_labels(files["train", "images"], files["train", "labels"])
    test = _images_and_labels(files["t10k", "images"], files["t10k", "labels"])
    if train[0].shape[1:] != test[0].shape[1:]:
        raise UserError(f"IDX dataset {folder!r}: training images are {train[0].shape[1:]} "
                        f"but test images are {test[0].shape[1:]}")
    return train, test


def read_keras_npz(path: str):
    """``((x_train, y_train), (x_test, y_test))`` of Keras' ``mnist.npz`` cache file."""
    try:
        with np.load(path, allow_pickle=False) as arrays:
            x_train, y_train, x_test, y_test = (arrays[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    except (OSError, ValueError, KeyError, EOFError, zlib.error) as error:
        raise UserError(f"{path!r} is not Keras' mnist.npz (x_train, y_train, x_test, y_test): {error}") from None
    parts = []
    for images, labels, split in ((x_train, y_train, "train"), (x_test, y_test, "test")):
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise UserError(f"{path!r}: x_{split} {images.shape} and y_{split} {labels.shape} are not "
                            "N images with N labels")
        parts.append((images[..., None], labels.astype(np.int32)))
    return tuple(parts)


def keras_cache_folders() -> list[str]:
    """Where ``keras.datasets`` keeps its downloads, most specific first."""
    homes = [os.environ["KERAS_HOME"]] if os.environ.get("KERAS_HOME") else []
    homes += [os.path.join(os.path.expanduser("~"), ".keras"), "/tmp/.keras"]
    folders = []
    for home in homes:
        folder = os.path.join(home, "datasets")
        if folder not in folders:
            folders.append(folder)
    return folders


def tfds_folders(data_dir: str | None) -> list[str]:
    folders = [data_dir] if data_dir else []
    folders.append(os.environ.get("TFDS_DATA_DIR") or os.path.join(os.path.expanduser("~"), "tensorflow_datasets"))
    return list(dict.fromkeys(folders))


def _tfds_prepared(folder: str, name: str) -> bool:
    root = os.path.join(folder, name)
    if not os.path.isdir(root):
        return False
    for version in os.listdir(root):
        if os.path.isfile(os.path.join(root, version, "dataset_info.json")):
            return True
    return False


def locate(name: str, data_dir: str | None = None) -> tuple[str, str]:
    """``(kind, where)`` of an installed copy of ``name`` (``fashion_mnist`` or ``mnist``): kind
    is ``"idx"`` (a folder of the four files), ``"npz"`` (Keras' mnist.npz) or ``"tfds"`` (a
    tensorflow-datasets data_dir). Raises a one-line :class:`UserError` naming every place
    looked at and how to install it.

    >>> locate("mnist", data_dir="/nonexistent")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    effscale.common.errors.UserError: mnist is not installed: looked in /nonexistent, ... fetch it once with ...
    """
    folder_names, _, install = DATASETS[name]
    looked = []

    def idx_in(folder):
        looked.append(folder)
        return folder if idx_files(folder) else None

    candidates = []
    if data_dir:
        candidates += [data_dir] + [os.path.join(data_dir, n) for n in folder_names]
    if name == "fashion_mnist":
        candidates.append(os.path.join(DEBIAN_FOLDER, "fashion-mnist"))
    for cache in keras_cache_folders():
        candidates += [os.path.join(cache, n) for n in folder_names]
    for folder in candidates:
        if idx_in(folder):
            return "idx", folder
        if name == "mnist" and os.path.basename(folder) == "mnist":
            npz = os.path.join(os.path.dirname(folder), "mnist.npz")
            looked.append(npz)
            if os.path.isfile(npz):
                return "npz", npz
    for folder in tfds_folders(data_dir):
        looked.append(f"{folder} (tensorflow-datasets)")
        if _tfds_prepared(folder, name):
            return "tfds", folder
    raise UserError(f"{name} is not installed: looked in {', '.join(dict.fromkeys(looked))}; {install}")


def read_installed(source: str, data_dir: str | None = None):
    """``(train, test, class names)`` of ``idx:FOLDER``, or of ``fashion_mnist`` / ``mnist`` found
    by :func:`locate` as IDX files or Keras' npz: train and test are (images uint8 (N, H, W, C),
    labels int32) pairs. A copy found only as tensorflow-datasets is the caller's to load."""
    if source.startswith("idx:"):
        folder = os.path.expanduser(source[len("idx:"):])
        if not folder:
            raise UserError("dataset 'idx:' needs a folder, e.g. 'idx:/usr/share/datasets/fashion-mnist'")
        train, test = read_idx_folder(folder)
        classes = int(max(train[1].max(initial=0), test[1].max(initial=0))) + 1
        names, where = [str(i) for i in range(classes)], folder
    else:
        kind, where = locate(source, data_dir)
        if kind == "tfds":
            raise ValueError(f"{source} is a tensorflow-datasets copy in {where!r}: load it with tfds")
        train, test = read_idx_folder(where) if kind == "idx" else read_keras_npz(where)
        names = DATASETS[source][1]
    for _, labels in (train, test):
        if len(labels) and (labels.min() < 0 or labels.max() >= len(names)):
            raise UserError(f"{source} at {where!r} has labels outside 0..{len(names) - 1}")
    if len(np.unique(train[1])) < 2:
        raise UserError(f"{source} at {where!r}: the training images hold fewer than two classes")
    return train, test, names
