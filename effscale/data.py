"""One tf.data pipeline for three kinds of source: the bundled digits set, a
tensorflow-datasets name, and an image folder.

``load_data`` returns batched ``tf.data.Dataset`` objects of ``(images, labels)``: images are
float32 pixels in [0, 255] of shape ``(B, R, R, 3)`` (effscale models rescale and normalize
inside), labels are int32 class indices. Sources:

* ``"digits"``: scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes, no
  download), grey replicated to three channels, scaled from 0..16 to 0..255;
* ``"tfds:NAME"`` (``"tfds:NAME/CONFIG:VERSION"`` too): a tensorflow-datasets dataset in
  ``data_dir``; labels and class names come from the dataset info. Nothing is downloaded
  unless ``download=True``;
* a folder path: one sub-folder per class, image files inside (png, jpg, jpeg, bmp, gif).

A source without a validation split gets a seeded, stratified held-out split of
``validation_fraction`` (for tfds: the last ``validation_fraction`` of the train split).

>>> splits = load_data("digits", resolution=16, batch_size=32)
>>> splits.num_classes, splits.train_size + splits.validation_size
(10, 1797)
>>> images, labels = next(iter(splits.validation))
>>> tuple(images.shape), images.dtype.name, labels.dtype.name
((32, 16, 16, 3), 'float32', 'int32')
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from effscale.errors import UserError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


@dataclass
class DataSplits:
    """Batched training and validation datasets and what a model needs to know about them."""

    train: "object"        # tf.data.Dataset, batched, shuffled (and augmented when asked)
    validation: "object"   # tf.data.Dataset, batched, in a fixed order, never augmented
    num_classes: int
    train_size: int
    validation_size: int
    class_names: list = field(default_factory=list)
    source: str = ""
    resolution: int = 0
    batch_size: int = 0

    def describe(self) -> dict:
        """Plain facts about the splits, for results records."""
        return {"source": self.source, "resolution": self.resolution, "batch_size": self.batch_size,
                "num_classes": self.num_classes, "train_size": self.train_size,
                "validation_size": self.validation_size}


def _check_arguments(resolution, batch_size, validation_fraction) -> None:
    if not (isinstance(resolution, (int, np.integer)) and 4 <= resolution <= 4096):
        raise UserError(f"resolution must be an integer in 4..4096, got {resolution!r}")
    if not (isinstance(batch_size, (int, np.integer)) and batch_size >= 1):
        raise UserError(f"batch size must be a positive integer, got {batch_size!r}")
    if not (isinstance(validation_fraction, (int, float)) and 0 < validation_fraction < 1):
        raise UserError(f"validation_fraction must be in (0, 1), got {validation_fraction!r}")


def stratified_split(labels: np.ndarray, validation_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded, stratified (train indices, validation indices): every class keeps at least one
    training example and gets ``round(n * fraction)`` validation examples.

    >>> train, val = stratified_split(np.array([0] * 10 + [1] * 5), 0.2, seed=0)
    >>> len(train), len(val), sorted(set(train) & set(val))
    (12, 3, [])
    """
    rng = np.random.default_rng(seed)
    train, validation = [], []
    for label in np.unique(labels):
        indices = np.flatnonzero(labels == label)
        rng.shuffle(indices)
        n_val = int(round(len(indices) * validation_fraction))
        n_val = min(n_val, len(indices) - 1)
        validation.extend(indices[:n_val])
        train.extend(indices[n_val:])
    train, validation = np.array(train, dtype=np.int64), np.array(validation, dtype=np.int64)
    rng.shuffle(train)
    validation.sort()
    return train, validation


# -- sources: each returns (train_raw, validation_raw, sizes, class names) -------------------
# Raw datasets yield (image uint8/float of any size, label int32), unbatched.

def _digits(validation_fraction, seed):
    import tensorflow as tf
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (bunch.images.astype("float32") * (255.0 / 16.0))[..., None]  # (N, 8, 8, 1)
    images = np.repeat(images, 3, axis=-1)
    labels = bunch.target.astype("int32")
    train_idx, val_idx = stratified_split(labels, validation_fraction, seed)
    make = lambda idx: tf.data.Dataset.from_tensor_slices((images[idx], labels[idx]))  # noqa: E731
    names = [str(n) for n in bunch.target_names]
    return make(train_idx), make(val_idx), len(train_idx), len(val_idx), names


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


def _folder(path, validation_fraction, seed):
    import tensorflow as tf

    from effscale.image_check import checked_images

    files, labels, classes = list_image_folder(path)
    files, labels = checked_images(path, files, labels)  # corrupt files: refused, or dropped on request
    train_idx, val_idx = stratified_split(labels, validation_fraction, seed)
    files = np.array(files)

    def decode(file, label):
        image = tf.io.decode_image(tf.io.read_file(file), channels=3, expand_animations=False)
        return image, label

    def make(idx):
        ds = tf.data.Dataset.from_tensor_slices((files[idx], labels[idx]))
        return ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE)

    return make(train_idx), make(val_idx), len(train_idx), len(val_idx), classes


def _tfds(name, data_dir, train_split, validation_split, validation_fraction, seed, download):
    import tensorflow as tf
    import tensorflow_datasets as tfds

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
    splits = info.splits
    train_split = train_split or "train"
    if validation_split is None:
        for candidate in ("validation", "valid", "val", "test"):
            if candidate in splits and candidate != train_split:
                validation_split = candidate
                break
    if validation_split is None:  # hold out the tail of the train split
        percent = int(round(100 * validation_fraction))
        percent = min(max(percent, 1), 99)
        validation_split = f"{train_split}[{100 - percent}%:]"
        train_split = f"{train_split}[:{100 - percent}%]"
    sizes = []
    for split in (train_split, validation_split):
        try:
            sizes.append(int(splits[split].num_examples))
        except Exception as error:
            raise UserError(f"tensorflow-datasets dataset {name!r} has no split {split!r} "
                            f"(it has {', '.join(splits)}): {error}") from None
    if min(sizes) == 0:
        raise UserError(f"tensorflow-datasets dataset {name!r}: split sizes {sizes} include an empty split")
    read_config = tfds.ReadConfig(shuffle_seed=seed, try_autocache=False)

    def load(split, shuffle):
        ds = builder.as_dataset(split=split, shuffle_files=shuffle, read_config=read_config)
        return ds.map(lambda ex: (ex[image_key], tf.cast(ex[label_key], tf.int32)),
                      num_parallel_calls=tf.data.AUTOTUNE)

    return load(train_split, True), load(validation_split, False), sizes[0], sizes[1], class_names


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

def _to_rgb_float(image, resolution):
    import tensorflow as tf

    image = tf.convert_to_tensor(image)
    channels = image.shape[-1]
    if channels == 1:
        image = tf.image.grayscale_to_rgb(image)
    elif channels == 4:
        image = image[..., :3]
    elif channels is None:  # unknown statically: decide at run time
        image = tf.cond(tf.shape(image)[-1] == 1, lambda: tf.image.grayscale_to_rgb(image), lambda: image[..., :3])
    image = tf.cast(image, tf.float32)
    image = tf.image.resize(image, (resolution, resolution), antialias=True)
    image = tf.clip_by_value(image, 0.0, 255.0)
    image.set_shape((resolution, resolution, 3))
    return image


def random_resized_crop(image, seed, resolution, scale=(0.5, 1.0), ratio=(3 / 4, 4 / 3)):
    """A seeded random crop of ``scale`` of the area and ``ratio`` aspect, resized back to
    ``resolution`` (Inception-style; ``seed`` is a shape-(2,) int tensor)."""
    import tensorflow as tf

    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image), bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]), seed=seed,
        min_object_covered=0.0, aspect_ratio_range=ratio, area_range=scale, max_attempts=10,
        use_image_if_no_bounding_boxes=True)
    crop = tf.slice(image, begin, size)
    crop = tf.image.resize(crop, (resolution, resolution))
    crop.set_shape((resolution, resolution, 3))
    return crop


def augment_image(image, seed, resolution, flip=True):
    import tensorflow as tf

    seeds = tf.random.experimental.stateless_split(seed, 2)
    image = random_resized_crop(image, seeds[0], resolution)
    if flip:
        image = tf.image.stateless_random_flip_left_right(image, seeds[1])
    return image


def load_data(source: str = "digits", resolution: int = 32, batch_size: int = 64,
              validation_fraction: float = 0.2, seed: int = 0, augment: bool = False,
              data_dir: str | None = None, train_split: str | None = None,
              validation_split: str | None = None, cache: bool = True, *,
              shuffle_seed: int | None = None, flip: bool = True, randaugment: bool = False,
              drop_remainder: bool = False, download: bool = False,
              shuffle_buffer: int | None = None, validation_batch_size: int | None = None) -> DataSplits:
    """Load ``source`` as batched training and validation datasets at ``resolution``.

    ``batch_size`` is the batch the datasets yield: pass the GLOBAL batch (per-replica batch
    times replicas; :func:`effscale.strategy.global_batch_size`) and let the strategy split it.
    ``seed`` fixes the held-out split, the shuffling and the augmentation; ``shuffle_seed``
    (default ``seed``) changes only the shuffling and augmentation, e.g. for a resumed run.
    ``augment`` adds a random resized crop (50-100% of the area) and, if ``flip``, a
    horizontal flip; ``randaugment`` adds keras' RandAugment on top.
    Images are resized (and cached) once at ``resolution`` before augmentation.

    >>> load_data("no-such-thing")
    Traceback (most recent call last):
    ...
    effscale.errors.UserError: unknown dataset 'no-such-thing': expected 'digits', 'tfds:NAME' or an image folder path
    """
    import tensorflow as tf

    _check_arguments(resolution, batch_size, validation_fraction)
    resolution, batch_size = int(resolution), int(batch_size)
    source = str(source)
    if source == "digits":
        train, validation, n_train, n_val, names = _digits(validation_fraction, seed)
    elif source.startswith("tfds:"):
        train, validation, n_train, n_val, names = _tfds(
            source[len("tfds:"):], data_dir, train_split, validation_split, validation_fraction, seed, download)
    elif os.path.isdir(source):
        train, validation, n_train, n_val, names = _folder(source, validation_fraction, seed)
    else:
        raise UserError(f"unknown dataset {source!r}: expected 'digits', 'tfds:NAME' or an image folder path")
    if drop_remainder and n_train < batch_size:
        raise UserError(f"batch size {batch_size} is larger than the {n_train} training images of {source!r}")

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    options.deterministic = True

    prepare = lambda image, label: (_to_rgb_float(image, resolution), tf.cast(label, tf.int32))  # noqa: E731
    train = train.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    validation = validation.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    if cache:
        train, validation = train.cache(), validation.cache()
    shuffle_seed = seed if shuffle_seed is None else shuffle_seed
    buffer = shuffle_buffer or min(n_train, 10_000)
    train = train.shuffle(buffer, seed=shuffle_seed, reshuffle_each_iteration=True)
    if augment:
        randoms = tf.data.Dataset.random(seed=shuffle_seed, rerandomize_each_iteration=True).batch(2)
        train = tf.data.Dataset.zip((train, randoms)).map(
            lambda example, s: (augment_image(example[0], s, resolution, flip), example[1]),
            num_parallel_calls=tf.data.AUTOTUNE)
    train = train.batch(batch_size, drop_remainder=drop_remainder)
    if augment and randaugment:
        import keras

        rand_augment = keras.layers.RandAugment(value_range=(0, 255), seed=shuffle_seed)
        train = train.map(lambda x, y: (tf.clip_by_value(rand_augment(x, training=True), 0.0, 255.0), y),
                          num_parallel_calls=tf.data.AUTOTUNE)
    validation = validation.batch(validation_batch_size or batch_size)
    train = train.prefetch(tf.data.AUTOTUNE).with_options(options)
    validation = validation.prefetch(tf.data.AUTOTUNE).with_options(options)
    return DataSplits(train=train, validation=validation, num_classes=len(names), train_size=n_train,
                      validation_size=n_val, class_names=list(names), source=source,
                      resolution=resolution, batch_size=batch_size)
