"""Training-time image augmentation: an Inception-style random resized crop, or for small images
a random crop of the image reflect-padded by 1/8 of its size, each optionally with a horizontal
flip; every draw seeded (stateless), so a seed fixes the augmented stream."""

from __future__ import annotations

from effscale.common.errors import UserError


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


def padded_crop(image, seed, resolution, pad: int | None = None):
    """A seeded random ``resolution`` crop of the image reflect-padded by ``pad`` pixels on every
    side (default ``resolution // 8``: 4 at 32 px, 3 at 28): the standard augmentation for small
    images (CIFAR and Fashion-MNIST training recipes), which keeps the object's scale.

    >>> import tensorflow as tf
    >>> image = tf.reshape(tf.range(16 * 16 * 3, dtype=tf.float32), (16, 16, 3))
    >>> crop = padded_crop(image, tf.constant([1, 2]), 16)
    >>> crop.shape, bool(tf.reduce_any(crop != image))
    (TensorShape([16, 16, 3]), True)
    >>> bool(tf.reduce_all(padded_crop(image, tf.constant([1, 2]), 16, pad=0) == image))
    True
    """
    import tensorflow as tf

    pad = max(1, resolution // 8) if pad is None else int(pad)
    if pad:
        image = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
    crop = tf.image.stateless_random_crop(image, (resolution, resolution, image.shape[-1] or 3), seed)
    crop.set_shape((resolution, resolution, image.shape[-1] or 3))
    return crop


AUGMENTATIONS = ("resized-crop", "padded-crop")


def augmentation_mode(augment) -> str | None:
    """``augment`` as a mode name: False/None -> None, True -> ``"resized-crop"`` (the
    ImageNet-style default), or one of :data:`AUGMENTATIONS` by name.

    >>> augmentation_mode(True), augmentation_mode("padded-crop"), augmentation_mode(False)
    ('resized-crop', 'padded-crop', None)
    """
    if augment is None or augment is False:
        return None
    if augment is True:
        return "resized-crop"
    if augment in AUGMENTATIONS:
        return augment
    raise UserError(f"augment {augment!r}: expected true, false or one of {', '.join(AUGMENTATIONS)}")


def augment_image(image, seed, resolution, flip=True, mode: str = "resized-crop"):
    import tensorflow as tf

    seeds = tf.random.experimental.stateless_split(seed, 2)
    if mode == "padded-crop":
        image = padded_crop(image, seeds[0], resolution)
    else:
        image = random_resized_crop(image, seeds[0], resolution)
    if flip:
        image = tf.image.stateless_random_flip_left_right(image, seeds[1])
    return image
