"""The tabular benchmark's generation script, in its smoke mode: it trains, records and resumes."""

import json
import os

import pytest

pytestmark = pytest.mark.slow  # every test here shares one end-to-end run

SCRIPT = os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks", "tabular", "generate.py")




@pytest.fixture(scope="module")
def smoke(tmp_path_factory, load_benchmark):
    folder = tmp_path_factory.mktemp("tabular")
    out, work = str(folder / "table.json"), str(folder / "work")
    script = load_benchmark("tabular/generate.py")
    common = ["--count", "4", "--epochs", "1", "--seeds", "0", "--resolution", "8", "--no-latency",
              "--out", out, "--work", work]
    assert script.main(["--limit", "3", *common]) == 0
    with open(out) as handle:
        first = json.load(handle)
    assert script.main(common) == 0  # the rerun trains only the one architecture left
    with open(out) as handle:
        second = json.load(handle)
    return script, first, second


def test_limit_mode_records_three_trained_architectures(smoke):
    import keras

    from effscale.model.builder import build
    from effscale.model.genotype import Genotype

    script, first, _ = smoke
    assert first["meta"]["count"] == 3 and first["meta"]["complete"] is False
    space = script.subspace()
    rows = first["rows"]
    assert rows[0]["genotype"] == space.reference.encode()  # the reference is always recorded
    assert len({row["key"] for row in rows}) == 3
    for row in rows:
        genotype = Genotype.parse(row["genotype"])
        assert genotype.key == row["key"]
        assert space.to_genotype(row["values"]) == genotype  # the values are the architecture's
        keras_params = build(genotype, first["meta"]["cost_variant"], classes=10).count_params()
        assert row["params"] == keras_params
        # one epoch on digits at 8 px is far above chance (0.1) when training works
        assert 0.25 < row["accuracy"] <= 1.0 and row["accuracy"] == row["accuracy_epoch1"]
        assert row["train_seconds"] > 0 and row["macs"] > 0
    keras.backend.clear_session()


def test_rerun_resumes_and_completes_the_sample(smoke):
    _, first, second = smoke
    assert second["meta"]["count"] == 4 and second["meta"]["complete"] is True
    assert second["rows"][:3] == first["rows"]  # finished work is kept, not retrained


# -- the Fashion-MNIST preset, on a small IDX dataset written here (tests never read the real one) --

def _write_idx_dataset(folder):
    """Three classes of 8x8 images (a bright left, middle or right band plus noise): learnable in
    one epoch, and the same four IDX files Fashion-MNIST ships."""
    import numpy as np

    from effscale.data.idx import write_idx

    rng = np.random.default_rng(0)
    os.makedirs(folder)
    for prefix, count in (("train", 6000), ("t10k", 300)):
        labels = np.arange(count) % 3
        images = rng.normal(60, 40, size=(count, 8, 8))
        for label in range(3):
            images[labels == label, :, 2 * label + 1:2 * label + 3] += 120
        write_idx(os.path.join(folder, f"{prefix}-images-idx3-ubyte.gz"), np.clip(images, 0, 255).astype(np.uint8))
        write_idx(os.path.join(folder, f"{prefix}-labels-idx1-ubyte.gz"), labels.astype(np.uint8))
    return folder


@pytest.fixture(scope="module")
def fashion(tmp_path_factory, load_benchmark):
    import signal
    import subprocess
    import sys
    import time

    folder = tmp_path_factory.mktemp("fashion")
    data = _write_idx_dataset(str(folder / "idx"))
    out, work = str(folder / "table.json"), str(folder / "work")
    common = ["--preset", "fashion_mnist", "--dataset", f"idx:{data}", "--resolution", "8", "--count", "4",
              "--no-latency", "--out", out, "--work", work]
    # A kill in the middle of the run: the rerun keeps every finished row and trains the rest.
    process = subprocess.Popen([sys.executable, SCRIPT, *common], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": os.getcwd()})
    log = os.path.join(work, "rows-0.jsonl")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if os.path.exists(log) and open(log).read().count("\n") >= 1:
            break
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    with open(log) as handle:
        killed = [json.loads(line) for line in handle if line.strip()]
    script = load_benchmark("tabular/generate.py")
    assert script.main(common) == 0
    assert script.main([*common, "--full", "--full-count", "3"]) == 0
    assert script.main([*common, "--proxies"]) == 0
    with open(out) as handle:
        table = json.load(handle)
    return script, killed, table


def test_fashion_preset_resumes_after_a_kill_with_its_recipe_and_space(fashion):
    script, killed, table = fashion
    meta, rows = table["meta"], table["rows"]
    assert 1 <= len(killed) < 4 and meta["count"] == 4 and meta["complete"] is True
    by_key = {row["key"]: row for row in rows}
    for row in killed:  # finished before the kill: kept as it was, not retrained
        assert {k: by_key[row["key"]][k] for k in row} == row
    assert meta["recipe"]["epochs"] == 1 and meta["recipe"]["train_fraction"] == 0.1
    assert meta["recipe"]["schedule"] == "cosine" and meta["recipe"]["seeds"] == [0, 1]
    assert set(meta["space"]["open"]) == {"block", "kernel", "expand", "se", "repeats", "filters"}
    assert rows[0]["genotype"] == script.subspace("fashion_mnist").reference.encode()
    for row in rows:
        assert len(row["accuracy_seeds"]) == 2 and row["accuracy"] == pytest.approx(sum(row["accuracy_seeds"]) / 2)
        assert 1 / 3 < row["accuracy"] <= 1.0  # above chance on the three bands
        assert row["synflow"] is not None and row["naswot"] is not None


def test_fashion_full_training_and_statistics_match_a_hand_computation(fashion):
    import numpy as np
    from scipy.stats import spearmanr

    _, _, table = fashion
    rows, stats = table["rows"], table["meta"]["statistics"]
    full = [row for row in rows if "full" in row]
    assert [row["key"] for row in full] == [row["key"] for row in rows[:3]]  # the first three sampled
    assert table["meta"]["full_recipe"]["epochs"] == 2 and table["meta"]["full_recipe"]["train_fraction"] == 0.5
    for row in full:
        assert len(row["full"]["accuracy_seeds"]) == 2 and 0 < row["full"]["test_accuracy"] <= 1
    seeds = np.array([row["accuracy_seeds"] for row in rows])
    assert stats["proxy_seed_spearman"] == pytest.approx(spearmanr(seeds[:, 0], seeds[:, 1])[0], nan_ok=True)
    assert stats["proxy_seed_noise"] == pytest.approx(np.sqrt(np.mean((seeds[:, 0] - seeds[:, 1]) ** 2) / 2))
    assert stats["accuracy_spread"] == pytest.approx(np.std(seeds.mean(axis=1), ddof=1))
    proxy = [row["accuracy"] for row in full]
    assert stats["proxy_vs_full_spearman"] == pytest.approx(
        spearmanr(proxy, [row["full"]["accuracy"] for row in full])[0], nan_ok=True)
    assert stats["proxy_vs_full_test_spearman"] == pytest.approx(
        spearmanr(proxy, [row["full"]["test_accuracy"] for row in full])[0], nan_ok=True)
