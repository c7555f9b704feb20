"""Splits held in memory as tensors: what a search's proxy trainings read, many times over.

A proxy training runs one short epoch per candidate, and the old pipeline spent part of every
epoch in tf.data (a grey-to-RGB map and a shuffle of single images, element by element). Here the
cached images of a split are one tensor; an epoch shuffles *indices* and gathers each batch from
the tensor. The indices are shuffled by a ``tf.data`` shuffle with the same seed and buffer the
element pipeline used, and that shuffle's order does not depend on what it shuffles, so every
epoch sees exactly the batches the element pipeline gave (``tests/test_trial_speed.py``).

>>> import numpy as np
>>> images = np.arange(5 * 2 * 2 * 1, dtype="float32").reshape(5, 2, 2, 1)
>>> labels = np.arange(5, dtype="int32")
>>> split = MemorySplit(images, labels, grey=True)
>>> [tuple(x.shape) for x, _ in split.batches(2)]
[(2, 2, 2, 3), (2, 2, 2, 3), (1, 2, 2, 3)]
>>> sorted(int(v) for _, y in split.shuffled(5, seed=0, batch_size=2) for v in y)
[0, 1, 2, 3, 4]
"""

from __future__ import annotations

import numpy as np


def without_autotune(dataset):
    """``dataset`` without tf.data's autotuning thread. An iterator with autotuning runs a model
    thread, and destroying the iterator waits for that thread's current optimization round: up to
    seconds at the end of every ``fit`` on a busy CPU, whose epoch of a proxy trial lasts a few seconds
    (measured in benchmarks/trial_cost.py). Gathering batches from memory needs no tuning.

    >>> import tensorflow as tf
    >>> without_autotune(tf.data.Dataset.range(3)).options().autotune.enabled
    False
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def materialize(dataset, batch: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Every ``(image, label)`` of an unbatched dataset as two numpy arrays, in order."""
    images, labels = [], []
    for x, y in dataset.batch(batch):
        images.append(np.asarray(x))
        labels.append(np.asarray(y))
    if not images:
        spec = dataset.element_spec
        return (np.zeros((0, *spec[0].shape), spec[0].dtype.as_numpy_dtype),
                np.zeros((0,), spec[1].dtype.as_numpy_dtype))
    return np.concatenate(images), np.concatenate(labels)


class MemorySplit:
    """One split's images (grey ones stored with one channel) and labels as tensors."""

    def __init__(self, images, labels, grey: bool):
        import tensorflow as tf

        self.images, self.labels = tf.constant(images), tf.constant(labels)
        self.grey, self.size = grey, int(len(labels))

    def _rgb(self, images):
        import tensorflow as tf

        return tf.image.grayscale_to_rgb(images) if self.grey else images

    def gather(self, indices):
        """The batch ``(images, labels)`` at ``indices`` (RGB)."""
        import tensorflow as tf

        return self._rgb(tf.gather(self.images, indices)), tf.gather(self.labels, indices)

    def batches(self, batch_size: int):
        """The split in its order, batched (held-out splits)."""
        import tensorflow as tf

        ds = tf.data.Dataset.from_tensor_slices((self.images, self.labels)).batch(batch_size)
        return without_autotune(ds.map(lambda x, y: (self._rgb(x), y), num_parallel_calls=tf.data.AUTOTUNE))

    def order(self, buffer: int, seed):
        """Indices in the order a ``shuffle(buffer, seed, reshuffle_each_iteration=True)`` of the
        split's elements gives them (another order each pass)."""
        import tensorflow as tf

        return tf.data.Dataset.range(self.size).shuffle(buffer, seed=seed, reshuffle_each_iteration=True)

    def batched(self, order, batch_size: int, drop_remainder: bool = False):
        """Batches gathered along an index dataset ``order``."""
        import tensorflow as tf

        return without_autotune(order.batch(batch_size, drop_remainder=drop_remainder).map(
            self.gather, num_parallel_calls=tf.data.AUTOTUNE))

    def shuffled(self, buffer: int, seed, batch_size: int, drop_remainder: bool = False):
        """A shuffled pass per iteration, batched."""
        return self.batched(self.order(buffer, seed), batch_size, drop_remainder)


def hold_in_memory(cached: dict, grey: bool, buffer: int, seed) -> dict:
    """The training and validation splits of ``cached`` (unbatched datasets by split name) as
    :class:`MemorySplit` values, and ``order``: the training indices shuffled as
    ``shuffle(buffer, seed, reshuffle_each_iteration=True)`` shuffled the images."""
    held = {split: MemorySplit(*materialize(cached[split]), grey=grey) for split in ("train", "validation")}
    return {**held, "order": held["train"].order(buffer, seed)}
