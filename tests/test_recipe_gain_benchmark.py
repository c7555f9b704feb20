"""benchmarks/recipe_gain.py, the harness of the final recipe's gain, in its smoke mode (digits,
1 epoch, the plain and the strong recipe): the trainings are real; what is checked is the harness
(one result file per run, what it records, a rerun that skips, a lost result rebuilt from the
work folder without training again), not the accuracy."""

import json
import os

import pytest

pytestmark = pytest.mark.slow

RUNS = ("plain-e1-s0", "strong-e1-s0")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, load_benchmark):
    folder = tmp_path_factory.mktemp("recipe_gain")
    script = load_benchmark("recipe_gain.py")
    args = ["--smoke", "--work", str(folder / "work"), "--out", str(folder / "out")]
    assert script.main(args) == 0
    records = {run: json.loads((folder / "out" / f"{run}.json").read_text()) for run in RUNS}
    return script, folder, args, records


def test_every_run_is_one_file_with_its_recipe_costs_and_test_accuracy(smoke):
    _, _, _, records = smoke
    for run, record in records.items():
        assert record["name"] == run and record["epochs"] == 1 and len(record["history"]) == 1
        assert 0 <= record["test_top1"] <= 1 and record["params"] > 0 and record["multiply_adds"] > 0
        assert record["wall_seconds"] > 0 and 0 < record["cpu_seconds"]
        assert record["dataset"] == "digits" and record["data"]["test_size"] > 0
    # the two recipes differ in exactly what the configuration says, nothing else
    plain, strong = records["plain-e1-s0"]["recipe"], records["strong-e1-s0"]["recipe"]
    assert plain["augment"] is False and strong["augment"] == "padded-crop"
    assert strong["weight_decay"] == 0.02 and plain["weight_decay"] == 1e-5
    assert {k for k in plain if plain[k] != strong[k]} == {"augment", "weight_decay"}
    # same model both times
    assert records["plain-e1-s0"]["params"] == records["strong-e1-s0"]["params"]


def test_the_table_lists_every_run(smoke):
    _, folder, _, records = smoke
    table = (folder / "out" / "results.md").read_text()
    for run, record in records.items():
        assert f"| {run} | {record['config']} | 1 | 0 | {record['test_top1']:.4f} |" in table


def test_a_rerun_skips_the_finished_runs(smoke, capsys):
    script, folder, args, records = smoke
    before = {run: os.stat(folder / "out" / f"{run}.json").st_mtime_ns for run in RUNS}
    assert script.main(args) == 0
    printed = capsys.readouterr().out
    assert all(f"{run}: done before, skipped" in printed for run in RUNS)
    assert {run: os.stat(folder / "out" / f"{run}.json").st_mtime_ns for run in RUNS} == before


def test_a_lost_result_is_rebuilt_from_the_work_folder_without_training(smoke, capsys):
    script, folder, args, records = smoke
    os.remove(folder / "out" / "strong-e1-s0.json")
    assert script.main(args) == 0
    rebuilt = json.loads((folder / "out" / "strong-e1-s0.json").read_text())
    # train_variant found the finished run in WORK/strong-e1-s0: same weights' accuracy, no epoch more
    assert rebuilt["test_top1"] == records["strong-e1-s0"]["test_top1"]
    assert rebuilt["history"] == records["strong-e1-s0"]["history"]
    assert rebuilt["cpu_seconds"] == records["strong-e1-s0"]["cpu_seconds"]


def test_bad_arguments_are_refused_before_anything_is_written(load_benchmark, tmp_path, capsys):
    script = load_benchmark("recipe_gain.py")
    for bad in (["--configs", "fancy"], ["--epochs", "x"], ["--shard", "3/2"], ["--epochs", "0"]):
        with pytest.raises(SystemExit) as stopped:
            script.main(["--smoke", "--work", str(tmp_path / "w"), "--out", str(tmp_path / "o"), *bad])
        assert stopped.value.code == 2
        assert "recipe_gain.py: error: " in capsys.readouterr().err.strip().splitlines()[-1]
    assert not (tmp_path / "w").exists() and not (tmp_path / "o").exists()
