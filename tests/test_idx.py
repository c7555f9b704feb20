"""MNIST-style IDX sources and the train / validation / test splits, on tiny IDX files written
here (never the installed Fashion-MNIST): the reader against the format's own bytes, where the
files are looked for, the splits (disjoint, stratified, seeded), class-balanced subsampling,
one-line errors, and that the test split's images never reach a search."""

import gzip
import os
import struct

import numpy as np
import pytest

from effscale import cli
from effscale.data.pipeline import DataSpec, load_data, split_indices, to_numpy
from effscale.common.errors import UserError
from effscale.data.idx import locate, read_idx, write_idx

SIZE = 8                 # 8x8 grey images
CLASSES = 3
TRAIN, TEST = 60, 15     # 20 and 5 per class


def _image_ids(images):
    """Each image written below is one uniform grey level, 3 x its id: resizing keeps it."""
    return set(np.round(np.asarray(images).reshape(len(images), -1).mean(axis=1) / 3).astype(int).tolist())


def write_idx_folder(folder, train=TRAIN, test=TEST, gz=True):
    """The four IDX files of a tiny dataset: image i is uniform grey 3*i (ids 1..train for the
    training file, train+1.. for the test file), label i % 3."""
    os.makedirs(folder, exist_ok=True)
    suffix = ".gz" if gz else ""
    for prefix, first, count in (("train", 1, train), ("t10k", train + 1, test)):
        ids = np.arange(first, first + count)
        images = np.repeat((3 * ids).astype(np.uint8), SIZE * SIZE).reshape(count, SIZE, SIZE)
        write_idx(os.path.join(folder, f"{prefix}-images-idx3-ubyte{suffix}"), images)
        write_idx(os.path.join(folder, f"{prefix}-labels-idx1-ubyte{suffix}"), (ids % CLASSES).astype(np.uint8))
    return folder


@pytest.fixture(scope="module")
def idx_folder(tmp_path_factory):
    return write_idx_folder(str(tmp_path_factory.mktemp("idx") / "tiny"))


def test_reader_reads_the_bytes_the_format_defines(tmp_path):
    # written by hand from the format: 0x00 0x00, type 0x08 (ubyte), 2 dims, 2 x 3, then the bytes
    raw = tmp_path / "by-hand-idx2-ubyte"
    raw.write_bytes(b"\x00\x00\x08\x02" + struct.pack(">II", 2, 3) + bytes([1, 2, 3, 4, 5, 250]))
    assert read_idx(str(raw)).tolist() == [[1, 2, 3], [4, 5, 250]]
    zipped = tmp_path / "by-hand-idx1-ubyte.gz"
    zipped.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + struct.pack(">I", 4) + bytes([9, 8, 7, 6])))
    assert read_idx(str(zipped)).tolist() == [9, 8, 7, 6]
    shorts = tmp_path / "shorts-idx1"  # type 0x0B: big-endian signed 16-bit
    shorts.write_bytes(b"\x00\x00\x0b\x01" + struct.pack(">I", 2) + struct.pack(">hh", -2, 300))
    assert read_idx(str(shorts)).tolist() == [-2, 300]


def test_idx_folder_splits_are_disjoint_stratified_and_the_official_test_set(idx_folder):
    splits = load_data(DataSpec(f"idx:{idx_folder}", resolution=SIZE, validation_fraction=0.25, seed=0), batch_size=16)
    assert splits.num_classes == CLASSES and splits.class_names == ["0", "1", "2"]
    assert (splits.train_size, splits.validation_size, splits.test_size) == (45, 15, TEST)
    parts = {name: to_numpy(getattr(splits, name)) for name in ("train", "validation", "test")}
    ids = {name: _image_ids(x) for name, (x, _) in parts.items()}
    assert ids["test"] == set(range(TRAIN + 1, TRAIN + TEST + 1))  # exactly the t10k file
    assert ids["train"] | ids["validation"] == set(range(1, TRAIN + 1))
    assert not ids["train"] & ids["validation"]
    assert np.bincount(parts["validation"][1]).tolist() == [5, 5, 5]  # stratified
    for x, y in parts.values():  # labels travel with their images; grey -> 3 equal channels
        assert x.shape[1:] == (SIZE, SIZE, 3) and np.array_equal(x[..., 0], x[..., 2])
        assert all(round(image.mean() / 3) % CLASSES == label for image, label in zip(x, y))


def test_splits_are_seeded(idx_folder):
    def validation_ids(seed):
        return _image_ids(to_numpy(load_data(DataSpec(f"idx:{idx_folder}", resolution=SIZE, seed=seed)).validation)[0])

    assert validation_ids(1) == validation_ids(1)
    assert validation_ids(1) != validation_ids(2)


def test_split_indices_three_ways_on_labels():
    labels = np.repeat(np.arange(4), [40, 40, 20, 100])
    a = split_indices(labels, 0.25, 0.2, seed=3)
    b = split_indices(labels, 0.25, 0.2, seed=3)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    every = np.concatenate([a["train"], a["validation"], a["test"]])
    assert sorted(every.tolist()) == list(range(len(labels)))  # disjoint and complete
    assert np.bincount(labels[a["test"]]).tolist() == [8, 8, 4, 20]
    assert np.bincount(labels[a["validation"]]).tolist() == [8, 8, 4, 20]


def test_train_examples_and_fraction_keep_classes_balanced(idx_folder):
    for option in ({"train_examples": 12}, {"train_fraction": 0.4}):
        splits = load_data(DataSpec(f"idx:{idx_folder}", resolution=SIZE, validation_fraction=0.25, **option),
                           batch_size=64)
        x, y = to_numpy(splits.train)
        assert splits.train_size == len(y) == 12 + 6 * ("train_fraction" in option)
        assert len(set(np.bincount(y).tolist())) == 1, np.bincount(y)  # same count in every class
        assert splits.validation_size == 15 and splits.test_size == TEST  # held-out splits stay whole
        full = load_data(DataSpec(f"idx:{idx_folder}", resolution=SIZE, validation_fraction=0.25))
        assert _image_ids(x) <= _image_ids(to_numpy(full.train)[0])  # a subset of the same training split
    with pytest.raises(UserError, match="not both"):
        load_data(DataSpec(f"idx:{idx_folder}", train_examples=5, train_fraction=0.5))


def test_uncompressed_files_and_the_dotted_spelling(tmp_path):
    folder = write_idx_folder(str(tmp_path / "raw"), gz=False)
    os.rename(os.path.join(folder, "t10k-images-idx3-ubyte"), os.path.join(folder, "t10k-images.idx3-ubyte"))
    assert load_data(DataSpec(f"idx:{folder}", resolution=SIZE)).test_size == TEST


def test_where_fashion_mnist_and_mnist_are_looked_for(tmp_path, monkeypatch, idx_folder):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    assert locate("fashion_mnist", data_dir=idx_folder) == ("idx", idx_folder)
    with pytest.raises(UserError) as missing:
        locate("mnist")
    message = str(missing.value)
    assert "\n" not in message and os.path.join(str(tmp_path / "keras"), "datasets", "mnist.npz") in message
    assert "keras.datasets.mnist.load_data()" in message and "idx:FOLDER" in message
    # Keras' cache: fashion-mnist/ holds the four IDX files, MNIST is one mnist.npz
    cache = tmp_path / "keras" / "datasets"
    write_idx_folder(str(cache / "fashion-mnist"))
    if not os.path.isdir("/usr/share/datasets/fashion-mnist"):  # the Debian package wins where installed
        assert locate("fashion_mnist") == ("idx", str(cache / "fashion-mnist"))
    rng = np.random.default_rng(0)
    np.savez(cache / "mnist.npz", x_train=rng.integers(0, 255, (40, 28, 28), dtype=np.uint8),
             y_train=np.arange(40) % 10, x_test=rng.integers(0, 255, (10, 28, 28), dtype=np.uint8),
             y_test=np.arange(10))
    assert locate("mnist") == ("npz", str(cache / "mnist.npz"))
    splits = load_data(DataSpec("mnist", resolution=14, validation_fraction=0.25))
    assert (splits.train_size, splits.validation_size, splits.test_size) == (30, 10, 10)
    assert splits.num_classes == 10


def _damage(folder, name, content):
    path = os.path.join(folder, name)
    with open(path, "wb") as handle:
        handle.write(content)


@pytest.mark.parametrize("damage, named, problem", [
    (lambda f: os.unlink(os.path.join(f, "t10k-labels-idx1-ubyte.gz")), None, "lacks t10k-labels-idx1-ubyte"),
    (lambda f: _damage(f, "train-images-idx3-ubyte.gz", gzip.compress(b"\x00\x01\x08\x03" + bytes(40))),
     "train-images-idx3-ubyte.gz", "not an IDX file: magic number 0x00010803"),
    (lambda f: write_idx(os.path.join(f, "train-labels-idx1-ubyte.gz"), np.zeros(59, np.uint8)),
     "train-labels-idx1-ubyte.gz", "holds 60 images but"),
    (lambda f: _damage(f, "t10k-images-idx3-ubyte.gz", gzip.compress(
        b"\x00\x00\x08\x03" + struct.pack(">III", 15, 8, 8) + bytes(100))),
     "t10k-images-idx3-ubyte.gz", "is truncated"),
    (lambda f: _damage(f, "train-images-idx3-ubyte.gz", open(os.path.join(f, "train-images-idx3-ubyte.gz"),
                                                              "rb").read()[:50]),
     "train-images-idx3-ubyte.gz", "damaged or truncated gzip"),
])
def test_missing_and_corrupt_files_are_one_line_naming_the_file(tmp_path, capsys, damage, named, problem):
    folder = write_idx_folder(str(tmp_path / "data"))
    damage(folder)
    with pytest.raises(UserError) as error:
        load_data(f"idx:{folder}")
    message = str(error.value)
    assert problem in message and "\n" not in message, message
    if named:
        assert os.path.join(folder, named) in message
    out = str(tmp_path / "out")
    code = cli.main(["train", "tiny", "--variant", "w=0.25,d=0.25,r=8", "--dataset", f"idx:{folder}",
                     "--out", out, "--verbose", "0", "--strategy", "default"])
    err = capsys.readouterr().err
    assert code == 2 and problem in err and len(err.strip().splitlines()) == 1, err
    assert not os.path.exists(os.path.join(out, "run.json"))


def test_missing_folder_and_installed_name_in_the_cli(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    base = ["train", "tiny", "--variant", "w=0.25,d=0.25,r=8", "--out", str(tmp_path / "o"), "--verbose", "0"]
    assert cli.main(base + ["--dataset", f"idx:{tmp_path / 'nowhere'}"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli.main(base + ["--dataset", "mnist"]) == 2
    err = capsys.readouterr().err
    assert "mnist is not installed: looked in" in err and len(err.strip().splitlines()) == 1


def _write_png_folder(root, count=75):
    """The same uniform grey images as PNG files in class sub-folders (no test set of its own)."""
    from PIL import Image

    for i in range(1, count + 1):
        folder = os.path.join(root, f"class{i % CLASSES}")
        os.makedirs(folder, exist_ok=True)
        Image.fromarray(np.full((SIZE, SIZE), 3 * i, np.uint8), "L").save(os.path.join(folder, f"{i}.png"))
    return root


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["idx", "folder"])
def test_the_test_split_never_reaches_the_search_or_the_coefficient_search(tmp_path, monkeypatch, idx_folder, kind):
    """Every image that any Keras ``fit`` of a search and a coefficient search trains or
    validates on is recorded on its way in; none is a test image."""
    import keras

    from effscale.family.coefficients import search_coefficients
    from effscale.search import run_search

    if kind == "idx":
        dataset, test_ids = f"idx:{idx_folder}", set(range(TRAIN + 1, TRAIN + TEST + 1))  # the t10k file
    else:
        dataset = _write_png_folder(str(tmp_path / "pngs"))
        test_ids = _image_ids(to_numpy(load_data(DataSpec(dataset, resolution=SIZE)).test)[0])  # what results are on
        assert len(test_ids) == 15
    seen = []
    real_fit = keras.Model.fit

    def recording_fit(self, x=None, *args, validation_data=None, **kwargs):
        for part in (x, validation_data):
            if part is not None:
                seen.append(_image_ids(to_numpy(part.take(1000))[0]))
        return real_fit(self, x, *args, validation_data=validation_data, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", recording_fit)
    micro = "stem8_head32_res8_relu-mb_r1_k3_s2_e2_c8"
    result = run_search(micro, oracle="random", cost="macs", target=1e5, trials=1, epochs=1, dataset=dataset,
                        project_dir=str(tmp_path / "search"), seed=0, resolution=SIZE, verbose=0)
    assert [t["status"] for t in result.trials] == ["COMPLETED"]
    search_coefficients(micro, dataset, project_dir=str(tmp_path / "coefficients"), epochs=1,
                        max_trials=1, batch_size=16)
    assert len(seen) >= 4  # train and validation of both searches
    everything = set().union(*seen)
    assert len(everything) == TRAIN + TEST - len(test_ids)  # all of train and validation arrived ...
    assert not everything & test_ids  # ... and not one test image


def test_a_prepared_tensorflow_datasets_copy_is_found_and_keeps_its_test_split(tmp_path, monkeypatch):
    """tensorflow-datasets' own MNIST builder prepares a copy from IDX files written here (its
    reader reads what write_idx wrote); effscale finds it and loads it like tfds:mnist."""
    import tensorflow_datasets as tfds
    from tensorflow_datasets.image_classification import mnist as tfds_mnist

    files = tmp_path / "files"
    files.mkdir()
    for prefix, first, count in (("train", 1, 40), ("t10k", 41, 10)):
        ids = np.arange(first, first + count)
        write_idx(str(files / f"{prefix}-images-idx3-ubyte"),
                  np.repeat((3 * ids).astype(np.uint8), 28 * 28).reshape(count, 28, 28))
        write_idx(str(files / f"{prefix}-labels-idx1-ubyte"), (ids % 10).astype(np.uint8))

    with tfds.core.registered.skip_registration():
        class LocalMnist(tfds_mnist.MNIST):
            name = "mnist"

            def _split_generators(self, dl_manager):
                return {split: self._generate_examples(count, str(files / f"{prefix}-images-idx3-ubyte"),
                                                       str(files / f"{prefix}-labels-idx1-ubyte"))
                        for split, prefix, count in (("train", "train", 40), ("test", "t10k", 10))}

    LocalMnist(data_dir=str(tmp_path / "tfds")).download_and_prepare()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    assert locate("mnist") == ("tfds", str(tmp_path / "tfds"))
    splits = load_data(DataSpec("mnist", resolution=28, validation_fraction=0.25))
    assert (splits.train_size, splits.validation_size, splits.test_size) == (30, 10, 10)
    assert splits.how["test"] == "test"
    assert _image_ids(to_numpy(splits.test)[0]) == set(range(41, 51))
    train_ids = _image_ids(to_numpy(splits.train)[0]) | _image_ids(to_numpy(splits.validation)[0])
    assert train_ids == set(range(1, 41))


# -- headers that claim more than the file holds (checked before any allocation) --------------------------
def _header(code, *shape):
    return struct.pack(f">BBBB{len(shape)}I", 0, 0, code, len(shape), *shape)


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("shape, payload, problem", [
    ((2**31,), b"\x01\x02", "truncated"),                         # 2**31 labels, two bytes of them
    ((65536, 65536, 65536, 65536), b"", "truncated"),             # 2**64 elements: wraps to 0 in int64
    ((2**32 - 1,) * 3, b"\x00" * 8, "truncated"),
    ((2, 2), b"\x00" * 5, "longer than its header says"),
])
def test_a_header_is_checked_against_the_file_size_first(tmp_path, gz, shape, payload, problem):
    data = _header(0x08, *shape) + payload
    path = tmp_path / ("bad-idx-ubyte" + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(data) if gz else data)
    with pytest.raises(UserError, match=problem) as error:
        read_idx(str(path))
    assert "\n" not in str(error.value) and "x".join(map(str, shape)) in str(error.value)


def test_a_gzip_that_inflates_past_its_header_is_read_no_further(tmp_path):
    import tracemalloc

    # 64 MB of zeros behind a header declaring 10 labels: a few KB on disk
    path = tmp_path / "bomb-labels-idx1-ubyte.gz"
    with gzip.open(path, "wb", compresslevel=1) as handle:
        handle.write(_header(0x08, 10))
        for _ in range(64):
            handle.write(bytes(1 << 20))
    assert path.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(UserError, match="longer than its header says: more than 18 bytes"):
            read_idx(str(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, peak  # bytes: the 64 MB are never inflated (gzip.decompress allocated them all)


def test_an_idx_dataset_with_a_lying_header_is_one_cli_line(tmp_path, capsys):
    folder = write_idx_folder(str(tmp_path / "lying"), gz=False)
    labels = os.path.join(folder, "train-labels-idx1-ubyte")
    with open(labels, "r+b") as handle:  # declare 2**31 labels in place of 60
        handle.seek(4)
        handle.write(struct.pack(">I", 2**31))
    out = tmp_path / "run"
    code = cli.main(["train", "tiny", "--dataset", f"idx:{folder}", "--epochs", "1", "--out", str(out)])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "train-labels-idx1-ubyte" in lines[0] and "truncated" in lines[0]
    assert not out.exists()
