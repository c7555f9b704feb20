"""Export: TFLite (float, dynamic, float16, int8 calibrated on training images), SavedModel and
.keras agree with the Keras model; `effscale export` prints agreement and latency; bad input is
one line, exit 2, nothing written."""

import itertools
import json

import keras
import numpy as np
import pytest

import effscale
from effscale import UserError
from effscale.cli import main
from effscale.data.pipeline import DataSpec, load_data
from effscale.common.migrations import write_state
from effscale.export import export_model, tflite_flatbuffer
from effscale.model.weights import refresh_normalization


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small variant trained briefly on digits (outputs far from uniform, so top-1 means something)."""
    keras.utils.set_random_seed(0)
    splits = load_data(DataSpec("digits", resolution=16), batch_size=64)
    model = effscale.build("tiny", "w=0.25,d=0.5,r=16", classes=10, options=effscale.ModelOptions(bn_momentum=0.9))
    refresh_normalization(model)
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(splits.train, epochs=2, verbose=0)
    train = np.concatenate([x.numpy() for x, _ in itertools.islice(splits.train, 2)])
    validation = np.concatenate([x.numpy() for x, _ in splits.validation])[:64]
    folder = tmp_path_factory.mktemp("model")
    model.save(folder / "model.keras")
    write_state(str(folder / "finetune.json"), {"data": {"source": "digits", "data_dir": None}})
    return model, train, validation, folder


@pytest.mark.slow
@pytest.mark.parametrize("quantize", [None, "dynamic", "float16", "int8"])
def test_tflite_export_agrees_with_keras(tmp_path, trained, quantize):
    model, train, validation, _ = trained
    report = export_model(model, tmp_path / "m.tflite", "tflite", quantize, sample=validation,
                          representative=train if quantize == "int8" else None, latency_runs=5)
    print(f"tflite {quantize}: agreement {report['top1_agreement']:.3f}, max abs diff {report['max_abs_diff']:.2e}, "
          f"{report['bytes']} bytes, {1000 * report['latency_seconds']:.3f} ms")
    assert report["samples"] == 64 and report["latency_seconds"] > 0
    assert (tmp_path / "m.tflite").stat().st_size == report["bytes"]
    assert json.loads((tmp_path / "m.tflite.json").read_text())["max_abs_diff"] == report["max_abs_diff"]
    tolerance, agreement = {None: (1e-4, 1.0), "dynamic": (0.05, 0.95), "float16": (0.01, 0.95),
                            "int8": (0.2, 0.85)}[quantize]
    assert report["max_abs_diff"] < tolerance and report["top1_agreement"] >= agreement
    if quantize == "int8":
        assert report["calibration_images"] == len(train)


@pytest.mark.slow
def test_int8_calibration_comes_from_the_representative_data(trained):
    model, train, _, _ = trained
    from effscale.latency import interpreter

    def input_scale(representative):
        runner = interpreter(tflite_flatbuffer(model, "int8", representative))
        scales = [d["quantization"][0] for d in runner.get_tensor_details() if d["dtype"] == np.int8
                  and d["quantization"][0] > 0]
        return scales

    full, dim = input_scale(train), input_scale(train * 0.1)
    assert full != dim  # different calibration data, different quantization parameters
    with pytest.raises(UserError, match="representative dataset from the training data"):
        export_model(model, "/tmp/never.tflite", "tflite", "int8")


@pytest.mark.slow
@pytest.mark.parametrize("format", ["keras", "savedmodel"])
def test_keras_and_savedmodel_exports_agree_exactly(tmp_path, trained, format):
    model, _, validation, _ = trained
    out = tmp_path / ("m.keras" if format == "keras" else "saved")
    report = export_model(model, out, format, sample=validation, latency_runs=3)
    assert report["top1_agreement"] == 1.0 and report["max_abs_diff"] < 1e-5 and out.exists()


@pytest.mark.slow
def test_cli_export_prints_agreement_and_latency_and_refuses_bad_input(tmp_path, trained, capsys):
    _, _, _, folder = trained
    assert main(["export", str(folder), "--format", "tflite", "--quantize", "int8", "--samples", "32",
                 "--calibration", "64", "--latency-runs", "3"]) == 0
    printed = capsys.readouterr().out
    assert "top-1 agreement" in printed and "max abs diff" in printed and " ms" in printed
    assert "int8 calibrated on 64 training images of digits" in printed
    report = json.loads((folder / "model-int8.tflite.json").read_text())
    assert report["samples"] == 32 and report["top1_agreement"] >= 0.85

    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "model.keras").write_bytes((folder / "model.keras").read_bytes())
    for argv, message in [
        (["export", str(tmp_path / "missing.keras"), "--format", "tflite"], "not a .keras file"),
        (["export", str(folder), "--format", "keras", "--quantize", "int8"], "tflite only"),
        (["export", str(bare), "--format", "tflite", "--quantize", "int8"], "representative dataset"),
        (["export", str(bare), "--format", "tflite", "--out", str(bare / "x.keras")], "ending in .tflite"),
        (["export", str(bare), "--format", "tflite", "--out", str(tmp_path / "no" / "x.tflite")], "does not exist"),
        (["export", str(bare), "--format", "tflite", "--dataset", "nosuch"], "unknown dataset"),
    ]:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("effscale: error:") and "\n" not in err and message in err, err
    assert sorted(p.name for p in bare.iterdir()) == ["model.keras"]
