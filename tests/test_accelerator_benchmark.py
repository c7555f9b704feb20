"""benchmarks/accelerator.py in its CPU smoke mode: every part runs and its records hold together."""

import importlib.util
import json
import math
import os

import pytest

pytestmark = pytest.mark.slow  # every test here shares one end-to-end run

SCRIPT = os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks", "accelerator.py")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    spec = importlib.util.spec_from_file_location("accelerator_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path_factory.mktemp("accelerator")
    module.run(str(out), smoke=True, budget_seconds=600)
    with open(out / "accelerator.json") as handle:
        record = json.load(handle)
    return record, (out / "accelerator.md").read_text(), module


def test_training_rows_compare_both_models_and_the_table_shows_them(smoke):
    record, table, _ = smoke
    assert record["mode"] == "smoke"
    [row] = record["training"]
    assert row["effscale_images_per_second"] > 0 and row["keras_images_per_second"] > 0
    assert row["ratio"] == pytest.approx(row["effscale_images_per_second"] / row["keras_images_per_second"])
    assert math.isfinite(row["final_loss"])
    assert f"| {row['batch']} | off | {row['effscale_images_per_second']:,.0f} | " in table
    assert f"{row['ratio']:.3f}" in table


def test_pipeline_is_measured_from_memory_and_from_a_folder_against_the_step(smoke):
    record, table, _ = smoke
    pipeline = record["pipeline"]
    for key in ("memory", "folder"):
        assert pipeline[key]["images_per_second"] > 0
        assert pipeline[key]["step_ratio"] == pytest.approx(
            pipeline[key]["images_per_second"] / pipeline["step_images_per_second"])
    assert "from a JPEG folder (decoded)" in table


def test_mirrored_custom_loop_and_family_ran(smoke):
    record, _, _ = smoke
    assert record["mirrored"]["replicas"] >= 1 and record["mirrored"]["images_per_second"] > 0
    assert [m["test_top1"] is not None for m in record["family"]["members"]] == [True]


def test_float16_custom_loop_scales_the_loss(smoke):
    """The custom loop (multi-worker's path) wraps the optimizer in a LossScaleOptimizer whose
    dynamic scale is a power of two, and training under float16 stays finite and learns."""
    record, _, _ = smoke
    loop = record["custom_loop"]
    assert loop["mixed_precision"] == "mixed_float16" and loop["loop"] == "custom"
    assert loop["loss_scale_optimizer"] is True
    scale = loop["dynamic_loss_scale"]
    assert 1 <= scale <= 2 ** 15 and math.log2(scale) == int(math.log2(scale))
    assert all(math.isfinite(loss) for loss in loop["train_losses"])
    assert loop["test_top1"] > 0.2  # ten classes: chance is 0.1
