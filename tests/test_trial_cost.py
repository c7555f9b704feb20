"""benchmarks/trial_cost.py --smoke: the harness splits a trial's time into its phases, the phases
add up to the trial's wall time, and old and new paths are both measured (not how fast they are)."""

import importlib.util
import json
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _module():
    spec = importlib.util.spec_from_file_location("trial_cost", os.path.join(ROOT, "benchmarks", "trial_cost.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_smoke_split_adds_up_to_the_wall_time(tmp_path, monkeypatch):
    monkeypatch.delenv("EFFSCALE_TRIAL_PATH", raising=False)
    trial_cost = _module()
    out = tmp_path / "cost.json"
    assert trial_cost.main(["--smoke", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert sorted(run["path"] for run in result["split"]) == ["new", "old"]
    for run in result["split"]:
        assert run["data"] > 0 and run["process_wall"] > 0
        (trial,) = run["trials"]
        phases = trial["phases"]
        assert set(phases) == set(trial_cost.PHASES)
        # Every measured phase took time and none exceeds the trial; together they are its wall time.
        assert all(phases[k] > 0 for k in ("build", "first_step", "steps", "evaluation"))
        assert abs(sum(phases.values()) - trial["wall"]) < 1e-6
        assert phases["other"] >= -1e-6 and trial["wall"] <= run["process_wall"]
        assert 0 <= trial["accuracy"] <= 1
    summary = result["summary"]["smoke"]
    assert {"old", "new"} <= set(summary) and summary["speedup_steady"] > 0
    for path in ("old", "new"):
        s = summary[path]
        assert abs(s["training_share"] + s["non_training_share"] - 1) < 1e-9
        assert abs(sum(s["phases"].values()) - s["trial_wall_mean"]) < 1e-6
    # Both paths trained the same seeded candidate to the same accuracy.
    assert summary["old"]["accuracies"] == summary["new"]["accuracies"]
    assert os.environ.get("EFFSCALE_TRIAL_PATH") is None
