"""TabularObjective lookups and the tabular search-quality study (benchmarks/tabular/study.py)."""

import dataclasses
import importlib.util
import json
import os
import time

import numpy as np
import pytest

from effscale.common.errors import UserError
from effscale.model.genotype import Genotype
from effscale.search import _keras_tuner as internals
from effscale.search.objectives import Reward
from effscale.search.space import SearchSpace
from effscale.search.tabular import NotInTable, TabularObjective, build_table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REAL_TABLE = os.path.join(ROOT, "benchmarks", "tabular", "table.json")
# The table's documented sub-space (docs/benchmarks.md), 3,456 genotypes.
SUB_SPACE = dict(open=("kernel", "expand", "se", "repeats"),
                 options={"kernel": (3, 5), "expand": (3, 6), "se": (0, 0.25), "repeats": (-1, 0)},
                 stages=(2, 3, 4))


def _study():
    spec = importlib.util.spec_from_file_location("tabular_study", os.path.join(ROOT, "benchmarks", "tabular", "study.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# A 4-choice space (16 genotypes): stage 2 and 3 kernel and SE ratio.
SMALL = SearchSpace("tiny", open=("kernel", "se"), stages=(2, 3))


def _v(k2, se2, k3, se3):
    return {"stage2/kernel": k2, "stage2/se": se2, "stage3/kernel": k3, "stage3/se": se3}


ROWS = [{"values": _v(3, 0.0, 3, 0.0), "accuracy": 0.80, "macs": 1.0e6, "train_seconds": 3.0},
        {"values": _v(5, 0.25, 5, 0.25), "accuracy": 0.90, "macs": 3.0e6, "train_seconds": 5.0},
        {"values": _v(5, 0.0, 3, 0.25), "accuracy": 0.85, "macs": 2.0e6, "train_seconds": 4.0}]
REWARD = Reward("macs", 2.0e6, "soft")


def test_exact_hit_and_reward_of_the_row():
    objective = TabularObjective(build_table(SMALL, ROWS, REWARD))
    hit = objective.lookup(_v(5, 0.25, 5, 0.25))
    assert (hit["accuracy"], hit["macs"], hit["distance"], hit["exact"]) == (0.90, 3.0e6, 0, True)
    result = objective.evaluate(_v(5, 0.25, 5, 0.25))
    # MnasNet soft constraint by hand: 0.9 * (3e6 / 2e6) ** -0.07
    assert result["reward"] == pytest.approx(0.9 * 1.5 ** -0.07, rel=1e-12)
    assert result["reward"] == pytest.approx(Reward("macs", 2.0e6, "soft")(0.90, 3.0e6), rel=1e-12)
    assert (result["cost"], result["train_seconds"], result["distance"]) == (3.0e6, 5.0, 0)
    # A genotype string and a Genotype give the same row as its values.
    genotype = SMALL.to_genotype(_v(5, 0.25, 5, 0.25))
    assert objective.lookup(genotype.encode())["key"] == objective.lookup(genotype)["key"] == genotype.key
    # Another reward: hard constraint at 1e6 multiply-adds, 0.9 * (3e6 / 1e6) ** -1
    assert objective.evaluate(_v(5, 0.25, 5, 0.25), Reward("macs", 1.0e6, "hard"))["reward"] == pytest.approx(0.3)


def test_nearest_counts_differing_values_and_breaks_ties_by_key():
    objective = TabularObjective(build_table(SMALL, ROWS, REWARD))
    query = _v(5, 0.0, 5, 0.0)
    # row0 (3,0,3,0): kernel2 and kernel3 differ -> 2; row1 (5,.25,5,.25): se2, se3 -> 2;
    # row2 (5,0,3,.25): kernel3, se3 -> 2. All tie at 2: the smallest key wins.
    hit = objective.lookup(query)
    assert (hit["distance"], hit["exact"]) == (2, False)
    assert hit["key"] == min(SMALL.to_genotype(r["values"]).key for r in ROWS)
    # The same answer whatever the row order.
    assert TabularObjective(build_table(SMALL, ROWS[::-1], REWARD)).lookup(query)["key"] == hit["key"]
    # A unique nearest row: (5, 0, 3, 0) is 1 away from row 2 only.
    near = objective.lookup(_v(5, 0.0, 3, 0.0))
    assert (near["distance"], near["accuracy"]) == (1, 0.85)
    assert objective.evaluate(_v(5, 0.0, 3, 0.0))["distance"] == 1


def test_not_in_table():
    objective = TabularObjective(build_table(SMALL, ROWS, REWARD))
    assert issubclass(NotInTable, UserError)
    missing = SMALL.to_genotype(_v(3, 0.25, 3, 0.25))
    with pytest.raises(NotInTable, match=missing.key):
        objective.lookup(_v(3, 0.25, 3, 0.25), nearest=False)
    # A value the sub-space does not have.
    with pytest.raises(NotInTable, match="stage2/kernel = 7"):
        objective.lookup(_v(7, 0.0, 3, 0.0))
    # A genotype outside the sub-space: stage 1 is not searched, here it differs from the reference.
    ref = SMALL.reference
    outside = ref.replace(stages=(dataclasses.replace(ref.stages[0], kernel=5),) + ref.stages[1:])
    with pytest.raises(NotInTable, match=outside.key):
        objective.lookup(outside)
    with pytest.raises(NotInTable):
        objective.evaluate(outside.encode())


def _sub_space_table(count=30, seed=0):
    """``count`` distinct architectures of the documented sub-space with made-up metrics."""
    space = SearchSpace("tiny", **SUB_SPACE)
    rng = np.random.default_rng(seed)
    rows, seen = [], set()
    while len(rows) < count:
        values = space.random_values(rng)
        key = space.to_genotype(values).key
        if key in seen:
            continue
        seen.add(key)
        rows.append({"values": values, "accuracy": float(rng.uniform(0.5, 0.99)),
                     "accuracy_epoch1": float(rng.uniform(0.1, 0.9)), "accuracy_seeds": [0.5, 0.6],
                     "macs": float(rng.uniform(0.5e6, 3e6)), "params": float(rng.uniform(2e4, 9e4)),
                     "latency": 1e-4, "train_seconds": float(rng.uniform(5, 20)),
                     "synflow": float(rng.normal()), "proxy_seconds": 0.5})
    return build_table(space, rows, Reward("macs", 1.5e6, "soft"), machine="test")


def test_the_committed_table_or_one_built_here_loads_and_looks_up(tmp_path):
    # The real table is committed by the benchmark; until then (or in a checkout without it) the
    # test writes a small one in the same format and checks the same.
    path = REAL_TABLE
    if not os.path.exists(path):
        path = tmp_path / "table.json"
        path.write_text(json.dumps(_sub_space_table()))
    objective = TabularObjective(path)
    first = objective.rows[0]
    hit = objective.lookup(first["genotype"], nearest=False)
    assert (hit["key"], hit["exact"], hit["accuracy"]) == (first["key"], True, first["accuracy"])
    assert Genotype.parse(first["genotype"]).key == first["key"]


def test_statistics_by_hand():
    study = _study()
    assert study.rankdata([10, 30, 20, 20]).tolist() == [1.0, 4.0, 2.5, 2.5]
    # rho = 1 - 6 * sum(d^2) / (n (n^2 - 1)) = 1 - 6 * 2 / 60 = 0.8 (no ties)
    assert study.spearman([1, 2, 3, 4], [1, 3, 2, 4]) == (pytest.approx(0.8), 4)
    assert study.spearman([1, 2, float("nan"), 4], [4, 3, 2, 1]) == (pytest.approx(-1.0), 3)
    # pairs (2,1) win, (2,3) lose, (3,1) win, (3,3) tie: (1 + 0 + 1 + 0.5) / 4
    assert study.superiority([2, 3], [1, 3]) == pytest.approx(0.625)
    # Wall-clock to the reward threshold: trials until the best-so-far reaches 0.5 (the 2nd).
    run = {"rewards": [0.1, 0.5, 0.3, 0.9], "train_seconds": [1.0, 2.0, 3.0, 4.0],
           "proxy_seconds": [0.5, 0.0, 0.0, 0.0], "keys": ["a", "b", "c", "d"], "distance": [0, 1, 0, 0],
           "scored": [1, 0, 0, 0], "propose_ms": 1.0}
    summary = study.summarize([run], (2, 4), threshold=0.5, optimum=0.9)
    assert summary["threshold"]["mean_seconds"] == pytest.approx(3.5)
    assert summary["threshold"]["mean_trials"] == 2
    assert summary["budgets"]["2"]["mean"] == 0.5 and summary["budgets"]["4"]["mean"] == 0.9
    assert summary["found_optimum"] == 1


def test_study_smoke_on_a_small_table(tmp_path):
    study = _study()
    table = _sub_space_table()
    reward = Reward("macs", 1.5e6, "soft")
    by_key = {row["key"]: reward(row["accuracy"], row["macs"]) for row in table["rows"]}
    results = study.run_study(table, seeds=2, trials=10, workers=1, budgets=(5, 10))
    assert results["order"] == list(study.ORACLES)
    assert results["optimum"]["reward"] == pytest.approx(max(by_key.values()))
    assert set(results["correlations"]) >= {"accuracy_epoch1", "synflow", "params", "macs"}
    available = [name for name, entry in results["oracles"].items() if entry["available"]]
    assert set(available) >= {"random", "bayesian", "evolution", "reinforce", "predictor", "predictor+cost",
                              "evolution+reward", "random+reward"}
    for name, entry in results["oracles"].items():
        if not entry["available"]:
            assert name == "evolution+prescreen" and "prescreen" in entry["reason"]
            continue
        assert [run["seed"] for run in entry["runs"]] == [0, 1]
        for run in entry["runs"]:
            assert len(run["rewards"]) == 10
            best = np.maximum.accumulate(run["rewards"])
            assert np.all(np.diff(best) >= 0)
            # Each trial's reward is the reward of the row it looked up, and the final best is
            # the best reward among the rows visited.
            assert run["rewards"] == pytest.approx([by_key[k] for k in run["keys"]])
            assert best[-1] == pytest.approx(max(by_key[k] for k in run["keys"]))
        summary = entry["summary"]
        finals = [max(run["rewards"]) for run in entry["runs"]]
        assert summary["budgets"]["10"]["mean"] == pytest.approx(np.mean(finals))
        assert summary["budgets"]["5"]["mean"] <= summary["budgets"]["10"]["mean"]
        if name == "evolution+prescreen":
            assert all(sum(run["scored"]) > 0 for run in entry["runs"])
    text = study.markdown(results)
    for name in study.ORACLES:
        assert f"| {name} |" in text
    plot = tmp_path / "plot.png"
    study.plot(results, str(plot))
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- a table over a plain Keras Tuner space -------------------------------------------------------
BONUS = {"relu": 0.05, "tanh": 0.0, "gelu": 0.1}


def _plain_space():
    import keras_tuner

    hp = keras_tuner.HyperParameters()
    hp.Choice("units", [16, 32, 64])
    hp.Choice("activation", ["relu", "tanh", "gelu"])
    hp.Boolean("dropout")
    with hp.conditional_scope("dropout", [True]):
        hp.Choice("rate", [0.1, 0.3])
    return hp


def _plain_score(values):
    """By hand: the optimum is 64 units, gelu, dropout 0.1 (0.5 + 0.1 + 0.1 + 0.02)."""
    return 0.5 + values["units"] / 640 + BONUS[values["activation"]] + {0.1: 0.02, 0.3: 0.01}.get(values.get("rate"), 0)


def _plain_rows():
    rows = []
    for units in (16, 32, 64):
        for activation in BONUS:
            for dropout, rate in ((False, None), (True, 0.1), (True, 0.3)):
                values = {"units": units, "activation": activation, "dropout": dropout}
                if dropout:
                    values["rate"] = rate
                rows.append(values)
    return rows


@pytest.mark.parametrize("kind", ["csv", "json"])
def test_a_table_over_a_plain_keras_tuner_space_replays_through_run_oracle(tmp_path, kind):
    import csv

    import keras_tuner

    from effscale.search.oracles import PredictorOracle, RegularizedEvolutionOracle, ReinforceOracle, SampledBayesianOracle
    from effscale.search.tabular import HyperparameterTable, run_oracle

    rows = _plain_rows()
    path = tmp_path / f"table.{kind}"
    if kind == "csv":  # strings everywhere, an empty cell where 'rate' is inactive
        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, ["units", "activation", "dropout", "rate", "val_accuracy"])
            writer.writeheader()
            for values in rows:
                writer.writerow(dict(values, rate=values.get("rate", ""), val_accuracy=_plain_score(values)))
    else:
        path.write_text(json.dumps({"rows": [{"values": v, "val_accuracy": _plain_score(v)} for v in rows]}))
    table = HyperparameterTable(_plain_space(), str(path), metric="val_accuracy")
    assert len(table.rows) == 27
    objective = keras_tuner.Objective("val_accuracy", "max")
    oracles = {"keras_tuner random": keras_tuner.oracles.RandomSearchOracle,
               "evolution": RegularizedEvolutionOracle, "reinforce": ReinforceOracle,
               "predictor": PredictorOracle, "bayesian-sampled": SampledBayesianOracle}
    if kind == "json":  # the reader differs, not the oracles: two suffice
        oracles = {k: oracles[k] for k in ("keras_tuner random", "predictor")}
    for label, oracle_class in oracles.items():
        oracle = oracle_class(objective=objective, max_trials=27, hyperparameters=_plain_space(), seed=3)
        internals.set_project_dir(oracle, str(tmp_path), label.replace(" ", "_"))
        internals.keep_in_memory(oracle)
        started = time.perf_counter()
        records = run_oracle(oracle, table, 27)
        print(f"{label}: {len(records)} trials in {time.perf_counter() - started:.1f} s")
        # Keras Tuner's random draw (also the others' fallback) gives up after 20 collisions in a
        # row, so the last few of the 27 configurations may go unproposed.
        assert 20 <= len(records) <= 27, label
        for record in records:
            assert record["distance"] == 0 and record["reward"] == pytest.approx(_plain_score(record["values"]))
            assert oracle.trials[record["trial_id"]].score == pytest.approx(_plain_score(record["values"]))
        assert len({table.key(r["values"]) for r in records}) == len(records), label  # no repeats
        if len(records) == 27:  # the whole space, so the optimum
            assert max(r["reward"] for r in records) == pytest.approx(0.72)


def test_a_plain_table_rejects_bad_rows_in_one_line(tmp_path):
    from effscale.search.tabular import HyperparameterTable

    hp = _plain_space()
    with pytest.raises(UserError, match="units = '48' is not one of"):
        HyperparameterTable(hp, [{"units": "48", "activation": "relu", "dropout": "false", "score": 1}])
    with pytest.raises(UserError, match="no number in its 'score' column"):
        HyperparameterTable(hp, [{"units": 16, "activation": "relu", "dropout": False}])
    with pytest.raises(UserError, match="appears twice"):
        HyperparameterTable(hp, [{"units": 16, "activation": "relu", "dropout": False, "score": 1}] * 2)
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(UserError, match="neither CSV nor JSON"):
        HyperparameterTable(hp, str(tmp_path / "broken.json"))


@pytest.mark.slow
def test_a_killed_study_resumes_and_keeps_every_finished_search(tmp_path):
    """SIGKILL in the middle of a study: the rerun of the same command reads back the searches
    that had finished (their files untouched), runs the rest, and ends with the same results as
    a study that was never interrupted."""
    import signal
    import subprocess
    import sys

    study = _study()
    table = tmp_path / "table.json"
    table.write_text(json.dumps(_sub_space_table()))
    out = tmp_path / "out"
    args = ["--table", str(table), "--seeds", "8", "--trials", "30", "--oracles", "random,evolution,reinforce",
            "--workers", "1", "--out", str(out), "--plot", str(out / "plot.png")]
    process = subprocess.Popen([sys.executable, os.path.join(ROOT, "benchmarks", "tabular", "study.py"), *args],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "PYTHONPATH": ROOT})
    deadline = time.monotonic() + 300
    finished = []
    while time.monotonic() < deadline and process.poll() is None:
        finished = sorted((out / "work").glob("study-*/[!.]*.json")) if (out / "work").exists() else []
        if len(finished) >= 2:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL, "the study ended before it could be killed"
    assert not (out / "study.json").exists()
    # A kill in the middle of a write leaves a hidden temporary file beside the finished runs.
    before = {path: (path.stat().st_mtime_ns, path.read_text()) for path in
              (out / "work").glob("study-*/[!.]*.json")}
    assert 2 <= len(before) < 24

    assert study.main(args) == 0
    after = {path: (path.stat().st_mtime_ns, path.read_text()) for path in (out / "work").glob("study-*/*.json")}
    assert len(after) == 24 and all(after[path] == before[path] for path in before)
    assert not list((out / "work").glob("study-*/.tmp-*")), "the resume left a killed write's temporary file"
    resumed = json.loads((out / "study.json").read_text())
    assert resumed["resumed_runs"] == len(before)
    fresh = study.run_study(str(table), seeds=8, trials=30, oracles=("random", "evolution", "reinforce"))
    for name in ("random", "evolution", "reinforce"):
        np.testing.assert_allclose([run["rewards"] for run in resumed["oracles"][name]["runs"]],
                                   [run["rewards"] for run in fresh["oracles"][name]["runs"]], atol=1e-6)
    # A different setting is another fingerprint: nothing stale is read back.
    assert study.main([*args[:5], "20", *args[6:]]) == 0
    assert json.loads((out / "study.json").read_text())["resumed_runs"] == 0
