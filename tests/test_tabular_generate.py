"""The tabular benchmark's generation script, in its smoke mode: it trains, records and resumes."""

import importlib.util
import json
import os

import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks", "tabular", "generate.py")


def _load_script():
    spec = importlib.util.spec_from_file_location("tabular_generate", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tabular")
    out, work = str(folder / "table.json"), str(folder / "work")
    script = _load_script()
    common = ["--count", "6", "--epochs", "1", "--seeds", "0", "--resolution", "8", "--no-latency",
              "--out", out, "--work", work]
    assert script.main(["--limit", "5", *common]) == 0
    with open(out) as handle:
        first = json.load(handle)
    assert script.main(common) == 0  # the rerun trains only the one architecture left
    with open(out) as handle:
        second = json.load(handle)
    return script, first, second


def test_limit_mode_records_five_trained_architectures(smoke):
    import keras

    from effscale.builder import build
    from effscale.genotype import Genotype

    script, first, _ = smoke
    assert first["meta"]["count"] == 5 and first["meta"]["complete"] is False
    space = script.subspace()
    rows = first["rows"]
    assert rows[0]["genotype"] == space.reference.encode()  # the reference is always recorded
    assert len({row["key"] for row in rows}) == 5
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
    assert second["meta"]["count"] == 6 and second["meta"]["complete"] is True
    assert second["rows"][:5] == first["rows"]  # finished work is kept, not retrained
