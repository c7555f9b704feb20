"""One tf.data pipeline, three splits, for four kinds of source: the bundled digits set,
MNIST / Fashion-MNIST (installed IDX files), a tensorflow-datasets name, and an image folder.

``load_data`` returns batched ``tf.data.Dataset`` objects of ``(images, labels)``: images are
float32 pixels in [0, 255] of shape ``(B, R, R, 3)`` (effscale models rescale and normalize
inside; grey images are replicated to three channels), labels are int32 class indices. Sources:

* ``"digits"``: scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes, no
  download), scaled from 0..16 to 0..255;
* ``"fashion_mnist"``, ``"mnist"``: the 28x28 grey sets, read from wherever they are installed
  (the Debian package ``dataset-fashion-mnist``, Keras' dataset cache, a prepared
  tensorflow-datasets copy; see :mod:`effscale.data.idx`). Nothing is downloaded;
* ``"idx:FOLDER"``: a folder holding the four IDX files (``train-images-idx3-ubyte.gz``,
  ``train-labels-idx1-ubyte.gz``, ``t10k-images-idx3-ubyte.gz``, ``t10k-labels-idx1-ubyte.gz``);
* ``"tfds:NAME"`` (``"tfds:NAME/CONFIG:VERSION"`` too): a tensorflow-datasets dataset in
  ``data_dir``; labels and class names come from the dataset info. Nothing is downloaded
  unless ``download=True``;
* a folder path: one sub-folder per class, image files inside (png, jpg, jpeg, bmp, gif).

Three splits, always: **train** (what the model learns from), **validation** (what search,
early stopping, coefficient search and member selection look at) and **test** (what every
reported result is measured on, and nothing is selected on). The test split is the dataset's
own where it has one (MNIST's and Fashion-MNIST's 10,000 ``t10k`` images, a tfds ``test``
split); digits and image folders hold out a seeded, stratified ``test_fraction`` of all images.
The validation split is the dataset's own (tfds ``validation``) or a seeded, stratified
``validation_fraction`` of what is left for training (scikit-learn ``train_test_split`` with
``stratify=``). ``train_examples`` / ``train_fraction`` then keep a stratified subset of the
training split (cheap proxy tasks); validation and test stay whole.

>>> splits = load_data(DataSpec("digits", resolution=16), batch_size=32)
>>> splits.num_classes, splits.train_size, splits.validation_size, splits.test_size
(10, 1149, 288, 360)
>>> images, labels = next(iter(splits.validation))
>>> tuple(images.shape), images.dtype.name, labels.dtype.name
((32, 16, 16, 3), 'float32', 'int32')
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from effscale.common.errors import UserError
from effscale.data.memory import hold_in_memory
from effscale.data.spec import DataSpec
from effscale.data.augment import augment_image, augmentation_mode, padded_crop, random_resized_crop  # noqa: F401
from effscale.data.splits import class_balanced_subset, split_indices, stratified_split  # noqa: F401 (public here too)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
SPLITS = ("train", "validation", "test")
# The batch proxy trainings evaluate their held-out splits in: the same accuracy as the training
# batch, and a 12,000-image validation pass about 2x faster than at 64 on a CPU (fewer steps).
HELD_OUT_BATCH = 256


def held_out_batch(batch_size: int) -> int:
    """The batch a proxy training evaluates its held-out splits in: :data:`HELD_OUT_BATCH`, or
    the training batch where that is larger.

    >>> held_out_batch(64), held_out_batch(512)
    (256, 512)
    """
    return max(HELD_OUT_BATCH, batch_size)


@dataclass
class DataSplits:
    """Batched train, validation and test datasets and what a model needs to know about them."""

    train: "object"        # tf.data.Dataset, batched, shuffled (and augmented when asked)
    validation: "object"   # tf.data.Dataset, batched, in a fixed order, never augmented
    num_classes: int
    train_size: int
    validation_size: int
    class_names: list = field(default_factory=list)
    source: str = ""
    resolution: int = 0
    batch_size: int = 0
    test: "object" = None  # tf.data.Dataset, batched, in a fixed order, never augmented
    test_size: int = 0
    how: dict = field(default_factory=dict)  # how each split was made, for results records
    memory: dict = field(default_factory=dict)  # in_memory: {"train": MemorySplit, "order": its index dataset}

    def describe(self) -> dict:
        """Plain facts about the splits, for results records."""
        return {"source": self.source, "resolution": self.resolution, "batch_size": self.batch_size,
                "num_classes": self.num_classes, "train_size": self.train_size,
                "validation_size": self.validation_size, "test_size": self.test_size, "splits": dict(self.how)}


def to_numpy(dataset) -> tuple[np.ndarray, np.ndarray]:
    """``(images, labels)`` of every batch of a split, as numpy arrays (for inspection and tests).

    >>> images, labels = to_numpy(load_data(DataSpec("digits", resolution=8)).test)
    >>> images.shape, labels.shape
    ((360, 8, 8, 3), (360,))
    """
    images, labels = [], []
    for x, y in dataset:
        images.append(np.asarray(x))
        labels.append(np.asarray(y))
    return np.concatenate(images), np.concatenate(labels)


# -- sources: each returns (raw datasets by split, sizes by split, class names, how) ----------
# Raw datasets yield (image uint8/float of any size, label int32), unbatched.

def _in_memory(images, labels, test, names, options, how, make=None):
    """Raw datasets of arrays: ``test`` is the source's own (images, labels) or None to hold out;
    ``make(images, labels)`` turns a part into a dataset (default: the arrays themselves)."""
    import tensorflow as tf

    validation_fraction, test_fraction, seed, train_examples, train_fraction = options
    parts = split_indices(labels, validation_fraction, None if test is not None else test_fraction, seed,
                          train_examples, train_fraction)
    make = make or (lambda x, y: tf.data.Dataset.from_tensor_slices((x, y)))
    raw = {split: make(images[idx], labels[idx]) for split, idx in parts.items()}
    sizes = {split: len(idx) for split, idx in parts.items()}
    if test is not None:
        raw["test"], sizes["test"] = make(*test), len(test[1])
    return raw, sizes, names, how


def _how(validation: str, test: str, seed: int, train_examples, train_fraction) -> dict:
    how = {"validation": validation, "test": test, "seed": seed}
    if train_examples is not None or train_fraction is not None:
        how["train"] = (f"class-balanced subset of {train_examples} training examples" if train_examples
                        else f"class-balanced subset of {train_fraction:g} of the training examples")
    return how


def _digits(options):
    from sklearn.datasets import load_digits

    validation_fraction, test_fraction, seed, examples, fraction = options
    bunch = load_digits()
    images = (bunch.images.astype("float32") * (255.0 / 16.0))[..., None]  # (N, 8, 8, 1)
    how = _how(f"stratified {validation_fraction:g} of the rest", f"stratified {test_fraction:g} of all images",
               seed, examples, fraction)
    return _in_memory(images, bunch.target.astype("int32"), None, [str(n) for n in bunch.target_names], options, how)


def _idx(source, data_dir, options):
    from effscale.data.idx import read_installed

    validation_fraction, _, seed, examples, fraction = options
    (images, labels), test, names = read_installed(source, data_dir)
    how = _how(f"stratified {validation_fraction:g} of the training images", "the official test images (t10k)",
               seed, examples, fraction)
    return _in_memory(images, labels, test, names, options, how)


def list_image_folder(path: str) -> tuple[list[str], np.ndarray, list[str]]:
    """(file paths, int32 labels, class names) of a folder with one sub-folder per class."""
    if not os.path.isdir(path):
        raise UserError(f"image folder {path!r} does not exist")
    classes = sorted(e.name for e in os.scandir(path) if e.is_dir() and not e.name.startswith("."))
    if not classes:
        raise UserError(f"image folder {path!r} has no class sub-folders (expected {path}/CLASS/IMAGE.png)")
    files, labels = [], []
    for index, name in enumerate(classes):
        for root, _, names in sorted(os.walk(os.path.join(path, name))):
            for file in sorted(names):
                if file.lower().endswith(IMAGE_EXTENSIONS) and not file.startswith("."):
                    files.append(os.path.join(root, file))
                    labels.append(index)
    if not files:
        raise UserError(f"image folder {path!r} has no images ({', '.join(IMAGE_EXTENSIONS)}) "
                        f"in its class sub-folders {classes}")
    counts = np.bincount(labels, minlength=len(classes))
    empty = [c for c, n in zip(classes, counts) if n == 0]
    if empty:
        raise UserError(f"image folder {path!r}: class sub-folder(s) {empty} have no images")
    if len(classes) < 2:
        raise UserError(f"image folder {path!r} has one class ({classes[0]!r}); a classifier needs two or more")
    return files, np.array(labels, dtype=np.int32), classes


def _folder(path, options):
    import tensorflow as tf

    from effscale.data.image_check import checked_images

    files, labels, classes = list_image_folder(path)
    files, labels = checked_images(path, files, labels)  # corrupt files: refused, or dropped on request

    def decode(file, label):
        image = tf.io.decode_image(tf.io.read_file(file), channels=3, expand_animations=False)
        return image, label

    def make(files, labels):
        ds = tf.data.Dataset.from_tensor_slices((files, labels))
        return ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE)

    validation_fraction, test_fraction, seed, examples, fraction = options
    how = _how(f"stratified {validation_fraction:g} of the rest", f"stratified {test_fraction:g} of all images",
               seed, examples, fraction)
    return _in_memory(np.array(files), labels, None, classes, options, how, make)


def _tfds_splits(splits, train_split, validation_split, test_split, validation_fraction, test_fraction):
    """(train, validation, test) split names: the dataset's own where it has them, else
    percent slices of the train split (tensorflow-datasets shuffles examples when it prepares)."""
    train_split = train_split or "train"
    if validation_split is None:
        validation_split = next((c for c in ("validation", "valid", "val") if c in splits and c != train_split), None)
    if test_split is None:
        test_split = next((c for c in ("test",) if c in splits and c not in (train_split, validation_split)), None)
    if validation_split is None or test_split is None:
        if "[" in train_split:
            raise UserError(f"train split {train_split!r} is a slice already: name the validation and test "
                            "splits too (validation_split=, test_split=)")
        test_percent = 0 if test_split else min(max(int(round(100 * test_fraction)), 1), 98)
        validation_percent = 0 if validation_split else \
            min(max(int(round((100 - test_percent) * validation_fraction)), 1), 99 - test_percent)
        end = 100 - test_percent - validation_percent
        if validation_split is None:
            validation_split = f"{train_split}[{end}%:{end + validation_percent}%]"
        if test_split is None:
            test_split = f"{train_split}[{100 - test_percent}%:]"
        train_split = f"{train_split}[:{end}%]"
    return train_split, validation_split, test_split


def _tfds(name, data_dir, named_splits, options, download):
    import tensorflow as tf
    import tensorflow_datasets as tfds

    validation_fraction, test_fraction, seed, examples, fraction = options
    if not name:
        raise UserError("dataset 'tfds:' needs a name, e.g. 'tfds:tf_flowers'")
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as error:  # DatasetNotFoundError, bad config or version
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"unknown tensorflow-datasets dataset {name!r}: {first}") from None
    if download:
        builder.download_and_prepare()
    elif not _is_prepared(builder):
        raise UserError(f"tensorflow-datasets dataset {name!r} is not prepared in "
                        f"{builder.data_dir!r}; prepare it first or pass download=True (--download)")
    info = builder.info
    image_key, label_key = _supervised_keys(info, name)
    label_feature = info.features[label_key]
    num_classes = int(label_feature.num_classes)
    class_names = list(getattr(label_feature, "names", None) or [str(i) for i in range(num_classes)])
    chosen = dict(zip(SPLITS, _tfds_splits(info.splits, *named_splits, validation_fraction, test_fraction)))
    sizes = {}
    for role, split in chosen.items():
        try:
            sizes[role] = int(info.splits[split].num_examples)
        except Exception as error:
            raise UserError(f"tensorflow-datasets dataset {name!r} has no split {split!r} "
                            f"(it has {', '.join(info.splits)}): {error}") from None
    if min(sizes.values()) == 0:
        raise UserError(f"tensorflow-datasets dataset {name!r}: split sizes {sizes} include an empty split")
    read_config = tfds.ReadConfig(shuffle_seed=seed, try_autocache=False)
    pair = lambda ex: (ex[image_key], tf.cast(ex[label_key], tf.int32))  # noqa: E731

    def load(split, shuffle):
        ds = builder.as_dataset(split=split, shuffle_files=shuffle, read_config=read_config)
        return ds.map(pair, num_parallel_calls=tf.data.AUTOTUNE)

    raw = {"train": load(chosen["train"], examples is None and fraction is None),
           "validation": load(chosen["validation"], False), "test": load(chosen["test"], False)}
    if examples is not None or fraction is not None:  # read the labels alone, keep a class-balanced subset
        labels = np.fromiter((label for _, label in raw["train"].map(
            lambda x, y: (0, y)).as_numpy_iterator()), dtype=np.int32)
        count = int(examples) if examples is not None else max(1, int(round(len(labels) * fraction)))
        keep = class_balanced_subset(labels, count, seed)
        mask = np.zeros(len(labels), dtype=bool)
        mask[keep] = True
        raw["train"] = raw["train"].enumerate().filter(lambda i, _: tf.gather(mask, i)).map(lambda _, ex: ex)
        sizes["train"] = int(mask.sum())
    how = _how(chosen["validation"], chosen["test"], seed, examples, fraction)
    how.setdefault("train", chosen["train"])
    return raw, sizes, class_names, how


def _is_prepared(builder) -> bool:
    try:
        return bool(builder.is_prepared())
    except Exception:
        return os.path.isdir(builder.data_dir) and any(f.endswith(".json") for f in os.listdir(builder.data_dir))


def _supervised_keys(info, name):
    keys = info.supervised_keys
    if keys and len(keys) >= 2 and isinstance(keys[0], str):
        return keys[0], keys[1]
    features = info.features
    image_keys = [k for k, f in features.items() if type(f).__name__ == "Image"]
    label_keys = [k for k, f in features.items() if type(f).__name__ == "ClassLabel"]
    if image_keys and label_keys:
        return image_keys[0], label_keys[0]
    raise UserError(f"tensorflow-datasets dataset {name!r} has no (image, class label) features; "
                    f"its features are {list(features)}")


# -- the shared pipeline ------------------------------------------------------------------

def _to_rgb_float(image, resolution, keep_grey=False):
    """Float pixels at ``resolution``, RGB (grey kept one channel when ``keep_grey``)."""
    import tensorflow as tf

    image = tf.convert_to_tensor(image)
    channels = image.shape[-1]
    if channels == 1 and not keep_grey:
        image = tf.image.grayscale_to_rgb(image)
    elif channels == 4:
        image = image[..., :3]
    elif channels is None:  # unknown statically: decide at run time
        image = tf.cond(tf.shape(image)[-1] == 1, lambda: tf.image.grayscale_to_rgb(image), lambda: image[..., :3])
    image = tf.cast(image, tf.float32)
    image = tf.image.resize(image, (resolution, resolution), antialias=True)
    image = tf.clip_by_value(image, 0.0, 255.0)
    image.set_shape((resolution, resolution, 1 if (channels == 1 and keep_grey) else 3))
    return image


@dataclass(frozen=True)
class DataSource:
    """One kind of data source: ``matches(source)`` says whether a source text is of this kind,
    ``check(source, data_dir)`` raises the one-line UserError of one that is missing (without
    reading it, no TensorFlow), ``load(source, data_dir, named_splits, options, download)``
    returns (raw datasets by split, sizes by split, class names, how), ``help`` names it in the
    command line's help and in the unknown-dataset error."""

    help: str
    matches: object
    check: object
    load: object


def _check_named(source, data_dir):
    from effscale.data.idx import locate

    locate(source, data_dir)


def _load_named(source, data_dir, named_splits, options, download):
    from effscale.data.idx import locate

    kind, where = locate(source, data_dir)
    return _tfds(source, where, named_splits, options, False) if kind == "tfds" else _idx(source, data_dir, options)


def _check_idx(source, data_dir):
    from effscale.data.idx import idx_files, read_idx_folder

    folder = os.path.expanduser(source[len("idx:"):])
    if not idx_files(folder):
        read_idx_folder(folder)  # raises, naming what is missing


def _is_named(source):
    from effscale.data.idx import DATASETS

    return source in DATASETS


def _nothing_to_check(source, data_dir):
    return None


# The data sources, in the order a source text is matched: check_source, load_data and the help
# text (SOURCES_HELP) all read this table, so a new kind of source is one entry here.
SOURCES = (
    DataSource("digits", lambda s: s == "digits", _nothing_to_check, lambda s, d, n, o, dl: _digits(o)),
    DataSource("fashion_mnist, mnist", _is_named, _check_named, _load_named),
    DataSource("idx:FOLDER", lambda s: s.startswith("idx:"), _check_idx, lambda s, d, n, o, dl: _idx(s, d, o)),
    DataSource("tfds:NAME", lambda s: s.startswith("tfds:"), _nothing_to_check,
               lambda s, d, n, o, dl: _tfds(s[len("tfds:"):], d, n, o, dl)),
    DataSource("an image folder", os.path.isdir, _nothing_to_check, lambda s, d, n, o, dl: _folder(s, o)),
)
SOURCES_HELP = ", ".join(source.help for source in SOURCES[:-1]) + " or " + SOURCES[-1].help


def data_source(source: str) -> DataSource:
    """The :data:`SOURCES` entry of a source text (UserError for an unknown one).

    >>> data_source("idx:/tmp/x").help, data_source("mnist").help
    ('idx:FOLDER', 'fashion_mnist, mnist')
    """
    for entry in SOURCES:
        if entry.matches(str(source)):
            return entry
    expected = ", ".join(f"'{n.strip()}'" for entry in SOURCES[:-1] for n in entry.help.split(","))
    raise UserError(f"unknown dataset {str(source)!r}: expected {expected} or {SOURCES[-1].help} path")


def check_source(source: str, data_dir: str | None = None) -> None:
    """Raise the one-line :class:`UserError` that :func:`load_data` would for a source that is
    unknown or not installed, without reading it (no TensorFlow): for checks before anything
    is written.

    >>> check_source("digits")
    >>> check_source("cifar11")
    Traceback (most recent call last):
    ...
    effscale.common.errors.UserError: unknown dataset 'cifar11': expected 'digits', 'fashion_mnist', 'mnist', 'idx:FOLDER', 'tfds:NAME' or an image folder path
    """
    data_source(source).check(str(source), data_dir)


def load_data(data: DataSpec | str = "digits", batch_size: int = 64, *, augment: bool | str = False,
              flip: bool = True, randaugment: bool | float = False, shuffle_seed: int | None = None,
              drop_remainder: bool = False, cache: bool = True, validation_batch_size: int | None = None,
              in_memory: bool = False) -> DataSplits:
    """Load ``data`` (a :class:`~effscale.data.spec.DataSpec`, or a source name with the spec's
    defaults) as batched train, validation and test datasets at its resolution.

    ``batch_size`` is the batch the datasets yield: pass the GLOBAL batch (per-replica batch
    times replicas; :func:`effscale.training.strategy.global_batch_size`) and let the strategy split it.
    The spec's ``seed`` fixes the held-out splits, the shuffling and the augmentation;
    ``shuffle_seed`` (default the spec's ``seed``) changes only the shuffling and augmentation,
    e.g. for another training seed on the same splits or a resumed run. ``augment`` adds a random
    resized crop (50-100% of the area; ``True`` or ``"resized-crop"``) or a random crop of the
    image reflect-padded by 1/8 of its size (``"padded-crop"``, for small images) and, if
    ``flip``, a horizontal flip; ``randaugment`` adds keras' RandAugment on top (a number in
    (0, 1] is its magnitude, keras' ``factor``; True keeps keras' default 0.5).
    Images are resized (and, with ``cache``, cached) once at the resolution before augmentation.
    ``validation_batch_size`` (default ``batch_size``) batches the held-out splits.
    ``in_memory`` (no augmentation): training and validation images held as tensors, the same
    batches in the same order, cheaper per epoch (:mod:`effscale.data.memory`; proxy trainings).

    >>> load_data(DataSpec("digits", resolution=8, train_examples=100), batch_size=50).train_size
    100
    >>> load_data("no-such-thing")
    Traceback (most recent call last):
    ...
    effscale.common.errors.UserError: unknown dataset 'no-such-thing': expected 'digits', 'fashion_mnist', 'mnist', ...
    """
    import tensorflow as tf

    spec = DataSpec.of(data)
    if not (isinstance(batch_size, (int, np.integer)) and batch_size >= 1):
        raise UserError(f"batch size must be a positive integer, got {batch_size!r}")
    augmentation_mode(augment)
    resolution, batch_size, source, seed = spec.resolution, int(batch_size), spec.source, spec.seed
    options = (spec.validation_fraction, spec.test_fraction, seed, spec.train_examples, spec.train_fraction)
    named_splits = (spec.train_split, spec.validation_split, spec.test_split)
    raw, sizes, names, how = data_source(source).load(source, spec.data_dir, named_splits, options, spec.download)
    n_train = sizes["train"]
    if drop_remainder and n_train < batch_size:
        raise UserError(f"batch size {batch_size} is larger than the {n_train} training images of {source!r}")

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    options.deterministic = True

    grey = raw["train"].element_spec[0].shape[-1] == 1  # cached grey, a third of the memory
    prepare = lambda image, label: (_to_rgb_float(image, resolution, grey), tf.cast(label, tf.int32))  # noqa: E731
    ready = {split: raw[split].map(prepare, num_parallel_calls=tf.data.AUTOTUNE) for split in SPLITS}
    if cache:
        ready = {split: dataset.cache() for split, dataset in ready.items()}
    cached = dict(ready)
    if grey:
        ready = {split: dataset.map(lambda x, y: (tf.image.grayscale_to_rgb(x), y), num_parallel_calls=tf.data.AUTOTUNE)
                 for split, dataset in ready.items()}
    shuffle_seed = seed if shuffle_seed is None else shuffle_seed
    buffer = min(n_train, 10_000)
    mode = augmentation_mode(augment)
    memory = hold_in_memory(cached, grey, buffer, shuffle_seed) if in_memory and not mode else {}
    train = memory["train"].batched(memory["order"], batch_size, drop_remainder) if memory else \
        ready["train"].shuffle(buffer, seed=shuffle_seed, reshuffle_each_iteration=True)
    if mode:
        randoms = tf.data.Dataset.random(seed=shuffle_seed, rerandomize_each_iteration=True).batch(2)
        train = tf.data.Dataset.zip((train, randoms)).map(
            lambda example, s: (augment_image(example[0], s, resolution, flip, mode), example[1]),
            num_parallel_calls=tf.data.AUTOTUNE)
    if not memory:
        train = train.batch(batch_size, drop_remainder=drop_remainder)
    if augment and randaugment:
        import keras

        factor = 0.5 if randaugment is True else float(randaugment)
        rand_augment = keras.layers.RandAugment(value_range=(0, 255), factor=factor, seed=shuffle_seed)
        train = train.map(lambda x, y: (tf.clip_by_value(rand_augment(x, training=True), 0.0, 255.0), y),
                          num_parallel_calls=tf.data.AUTOTUNE)
    held_out = {split: (memory[split].batches if split in memory else ready[split].batch)(
        validation_batch_size or batch_size).prefetch(tf.data.AUTOTUNE).with_options(options)
                for split in ("validation", "test")}
    train = train.prefetch(tf.data.AUTOTUNE).with_options(options)
    return DataSplits(train=train, validation=held_out["validation"], num_classes=len(names), train_size=n_train,
                      validation_size=sizes["validation"], class_names=list(names), source=source,
                      resolution=resolution, batch_size=batch_size, test=held_out["test"],
                      test_size=sizes["test"], how=how, memory=memory)
