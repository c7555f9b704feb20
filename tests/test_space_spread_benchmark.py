"""benchmarks/space_spread.py in its smoke mode (digits, two architectures of the wide space at
8 px, one epoch): the trainings are real; what is checked is the harness (one file per
architecture, the old sample read from the Fashion-MNIST table, the cost ceiling, a rerun that
trains nothing, the summary computed from the files), not the accuracy."""

import json

import pytest

pytestmark = pytest.mark.slow


def test_smoke_run_writes_one_file_per_architecture_and_a_rerun_trains_nothing(tmp_path, load_benchmark, capsys):
    script = load_benchmark("space_spread.py")
    out = tmp_path / "out"
    assert script.main(["--smoke", "--out", str(out)]) == 0
    first = capsys.readouterr().out
    records = [json.loads((out / f"a{n:02d}.json").read_text()) for n in range(2)]
    old = script.old_sample()
    assert len(old["rows"]) == 30  # the table's fully trained architectures
    ceiling = max(r["macs"] for r in old["rows"])
    from effscale.search.space import WIDE, SearchSpace

    space = SearchSpace("tiny", **WIDE)
    assert records[0]["genotype"] == space.reference.encode()  # the reference first
    for record in records:
        assert 0 <= record["test"] <= 1 and 0 <= record["validation"] <= 1 and record["macs"] <= ceiling
        space.to_values(record["genotype"])  # a genotype of the wide space
    summary = json.loads(first.strip().splitlines()[-1])
    tests = [r["test"] for r in records]
    assert summary["wide"]["test"]["range"] == round(max(tests) - min(tests), 4)
    assert summary["old"]["test"]["count"] == 30
    assert summary["ratio"]["test"] == round(summary["wide"]["test"]["range"] / summary["old"]["test"]["range"], 2)
    assert "Range ratio wide / old" in (out / "results.md").read_text()
    assert first.count(" test ") == 2

    assert script.main(["--smoke", "--out", str(out)]) == 0
    again = capsys.readouterr().out
    assert " test " not in again.split("\n{")[0]  # nothing trained
    assert json.loads(again.strip().splitlines()[-1]) == summary
