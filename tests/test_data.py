"""The data layer reads the bundled digits set, an image folder of real PNG files and a
tensorflow-datasets dataset prepared locally (no download), at any resolution."""

import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from effscale.data.pipeline import list_image_folder, DataSpec, load_data, stratified_split, to_numpy
from effscale.common.errors import UserError


def test_digits_shapes_ranges_and_split():
    splits = load_data(DataSpec("digits", resolution=24, validation_fraction=0.25, seed=3), batch_size=50)
    assert splits.num_classes == 10 and splits.class_names == [str(i) for i in range(10)]
    assert splits.train_size + splits.validation_size + splits.test_size == 1797
    assert splits.test_size == 360 and splits.validation_size == 360  # 0.2 of all, then 0.25 of the rest
    xs, ys = to_numpy(splits.test)
    assert xs.shape == (360, 24, 24, 3) and np.bincount(ys).min() >= 35  # stratified: ~36 per class
    x, y = to_numpy(splits.validation)
    assert x.shape == (splits.validation_size, 24, 24, 3) and x.dtype == np.float32
    assert y.dtype == np.int32 and set(np.unique(y)) == set(range(10))
    assert 0.0 <= x.min() and x.max() <= 255.0 and x.max() > 200  # pixels, not [0, 1]
    np.testing.assert_array_equal(x[..., 0], x[..., 2])  # grey replicated to RGB
    xt, yt = to_numpy(splits.train)
    assert len(yt) == splits.train_size and xt.shape[1:] == (24, 24, 3)


def test_seeded_shuffle_is_reproducible_and_validation_fixed():
    a = load_data(DataSpec("digits", resolution=8, seed=1), batch_size=64)
    b = load_data(DataSpec("digits", resolution=8, seed=1), batch_size=64)
    c = load_data(DataSpec("digits", resolution=8, seed=1), batch_size=64, shuffle_seed=7)
    ya = next(iter(a.train))[1].numpy()
    np.testing.assert_array_equal(ya, next(iter(b.train))[1].numpy())
    assert not np.array_equal(ya, next(iter(c.train))[1].numpy())  # another order
    # the split itself depends on seed only, so the validation set is the same
    np.testing.assert_array_equal(to_numpy(a.validation)[1], to_numpy(c.validation)[1])
    # two epochs see two different orders
    first, second = [next(iter(a.train))[1].numpy() for _ in range(2)]
    assert not np.array_equal(first, second)


def test_augmentation_changes_train_images_only():
    plain = load_data(DataSpec("digits", resolution=16, seed=0), batch_size=32)
    augmented = load_data(DataSpec("digits", resolution=16, seed=0), batch_size=32, augment=True)
    xp, yp = next(iter(plain.train))
    xa, ya = next(iter(augmented.train))
    np.testing.assert_array_equal(yp.numpy(), ya.numpy())
    assert xa.shape == xp.shape and not np.allclose(xa.numpy(), xp.numpy())
    assert float(tf.reduce_min(xa)) >= 0.0 and float(tf.reduce_max(xa)) <= 255.0
    np.testing.assert_array_equal(to_numpy(plain.validation)[0], to_numpy(augmented.validation)[0])
    randaug = load_data(DataSpec("digits", resolution=16), batch_size=32, augment=True, randaugment=True)
    assert next(iter(randaug.train))[0].shape == (32, 16, 16, 3)


def test_padded_crop_shifts_the_image_without_rescaling_it():
    """padded-crop: each augmented image is the plain one shifted by at most resolution // 8
    pixels (reflect padding at the border), possibly flipped, never resized; the labels and the
    validation split are untouched."""
    plain = load_data(DataSpec("digits", resolution=16, seed=0), batch_size=32)
    shifted = load_data(DataSpec("digits", resolution=16, seed=0), batch_size=32, augment="padded-crop")
    xp, yp = (t.numpy() for t in next(iter(plain.train)))
    xs, ys = (t.numpy() for t in next(iter(shifted.train)))
    np.testing.assert_array_equal(yp, ys)
    assert not np.allclose(xs, xp)
    pad = 16 // 8
    for original, augmented in zip(xp, xs):
        padded = np.pad(original, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
        windows = [padded[i:i + 16, j:j + 16] for i in range(2 * pad + 1) for j in range(2 * pad + 1)]
        assert any(np.array_equal(augmented, w) or np.array_equal(augmented, w[:, ::-1]) for w in windows)
    np.testing.assert_array_equal(to_numpy(plain.validation)[0], to_numpy(shifted.validation)[0])
    with pytest.raises(UserError, match="padded-crop"):
        load_data(DataSpec("digits", resolution=16), augment="mixup")


def test_stratified_split_keeps_every_class_in_proportion():
    labels = np.repeat(np.arange(5), [2, 4, 10, 10, 40])
    train, val = stratified_split(labels, 0.5, seed=0)
    assert np.bincount(labels[val]).tolist() == [1, 2, 5, 5, 20]
    assert len(set(train) | set(val)) == len(labels) and not set(train) & set(val)
    with pytest.raises(UserError, match="stratified by class"):  # a class of one cannot be split
        stratified_split(np.repeat(np.arange(3), [1, 5, 5]), 0.3, seed=0)


def _write_png_folder(root, classes=("circle", "square", "stripe"), per_class=6, size=(20, 14)):
    rng = np.random.default_rng(0)
    for index, name in enumerate(classes):
        os.makedirs(os.path.join(root, name))
        for i in range(per_class):
            pixels = rng.integers(0, 255, size=(size[1], size[0], 3), dtype=np.uint8)
            pixels[..., index % 3] = 255  # a colour per class
            mode = "L" if i == 0 else "RGB"  # a grey PNG too
            image = Image.fromarray(pixels[..., 0] if mode == "L" else pixels, mode)
            image.save(os.path.join(root, name, f"img{i}.png"))
    with open(os.path.join(root, classes[0], "notes.txt"), "w") as handle:
        handle.write("not an image")


@pytest.mark.parametrize("resolution", [8, 37])
def test_image_folder_of_pngs(tmp_path, resolution):
    root = str(tmp_path / "shapes")
    _write_png_folder(root)
    splits = load_data(DataSpec(root, resolution=resolution, validation_fraction=0.25, test_fraction=1 / 3, seed=0),
                       batch_size=4)
    assert splits.class_names == ["circle", "square", "stripe"] and splits.num_classes == 3
    assert (splits.train_size, splits.validation_size, splits.test_size) == (9, 3, 6)
    x, y = to_numpy(splits.validation)
    assert x.shape == (3, resolution, resolution, 3) and sorted(y) == [0, 1, 2]
    assert sorted(to_numpy(splits.test)[1]) == [0, 0, 1, 1, 2, 2]
    xt, yt = to_numpy(splits.train)
    assert xt.shape == (9, resolution, resolution, 3) and np.bincount(yt).tolist() == [3, 3, 3]
    # the channel painted 255 survives decoding and resizing (a real decode of the PNGs)
    for image, label in zip(xt, yt):
        if not np.allclose(image[..., 0], image[..., 1]):  # skip the grey PNGs
            assert image[..., label % 3].mean() > 250


def test_image_folder_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        list_image_folder(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no class sub-folders"):
        load_data(str(tmp_path / "empty"))
    (tmp_path / "noimages" / "a").mkdir(parents=True)
    (tmp_path / "noimages" / "b").mkdir()
    (tmp_path / "noimages" / "a" / "readme.txt").write_text("x")
    with pytest.raises(UserError, match="has no images"):
        load_data(str(tmp_path / "noimages"))


def test_bad_arguments():
    with pytest.raises(UserError, match="unknown dataset 'cifar11'"):
        load_data("cifar11")
    with pytest.raises(UserError, match="batch size"):
        load_data("digits", batch_size=0)
    with pytest.raises(UserError, match="resolution"):
        load_data(DataSpec("digits", resolution=2))
    with pytest.raises(UserError, match="unknown tensorflow-datasets dataset 'no_such_dataset_xyz'"):
        load_data("tfds:no_such_dataset_xyz")


class EffscaleTinyColours(tfds.core.GeneratorBasedBuilder):
    """A tiny dataset prepared by the test itself: coloured 12x10 images, 3 classes."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(10, 12, 3)),
                "label": tfds.features.ClassLabel(names=["red", "green", "blue"]),
            }),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(30, 0), "test": self._generate_examples(9, 1)}

    def _generate_examples(self, count, seed):
        rng = np.random.default_rng(seed)
        for i in range(count):
            label = i % 3
            image = rng.integers(0, 60, size=(10, 12, 3), dtype=np.uint8)
            image[..., label] = 250
            yield f"{seed}-{i}", {"image": image, "label": label}


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    data_dir = str(tmp_path_factory.mktemp("tfds"))
    EffscaleTinyColours(data_dir=data_dir).download_and_prepare()
    return data_dir


@pytest.mark.parametrize("resolution", [9, 32])
def test_tfds_prepared_locally(tfds_dir, resolution):
    splits = load_data(DataSpec("tfds:effscale_tiny_colours", data_dir=tfds_dir, resolution=resolution), batch_size=8)
    assert splits.class_names == ["red", "green", "blue"] and splits.num_classes == 3
    # no validation split of its own: a held-out slice of train; test: the dataset's own test split
    assert (splits.train_size, splits.validation_size, splits.test_size) == (24, 6, 9)
    assert splits.how["validation"] == "train[80%:100%]" and splits.how["test"] == "test"
    x, y = to_numpy(splits.test)
    assert x.shape == (9, resolution, resolution, 3) and sorted(y.tolist()) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    for image, label in zip(x, y):
        assert image[..., label].mean() > 240 and image.mean() < 140


def test_tfds_held_out_split_and_missing_split(tfds_dir):
    # training on 'test' leaves no other split: validation and test are slices of it
    splits = load_data(DataSpec("tfds:effscale_tiny_colours", data_dir=tfds_dir, resolution=8,
                                validation_fraction=0.3, test_fraction=0.3, train_split="test"), batch_size=8)
    assert splits.train_size + splits.validation_size + splits.test_size == 9
    assert min(splits.validation_size, splits.test_size) > 0
    assert len(to_numpy(splits.train)[1]) == splits.train_size
    assert len(to_numpy(splits.test)[1]) == splits.test_size
    balanced = load_data(DataSpec("tfds:effscale_tiny_colours", data_dir=tfds_dir, resolution=8, train_examples=12),
                         batch_size=8)
    assert balanced.train_size == 12 and np.bincount(to_numpy(balanced.train)[1]).tolist() == [4, 4, 4]
    held = load_data(DataSpec("tfds:effscale_tiny_colours", data_dir=tfds_dir, resolution=8, train_split="train",
                              validation_split="train[80%:]"), batch_size=8)
    assert held.validation_size == 6
    with pytest.raises(UserError, match="no split"):
        load_data(DataSpec("tfds:effscale_tiny_colours", data_dir=tfds_dir, train_split="nope"))


def test_tfds_not_prepared_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="not prepared"):
        load_data(DataSpec("tfds:effscale_tiny_colours", data_dir=str(tmp_path)))
