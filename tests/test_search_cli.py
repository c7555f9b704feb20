"""The search command line: SIGKILL mid-trial and rerun, `effscale trials`, and bad input."""

import contextlib
import csv
import hashlib
import io
import os
import signal
import subprocess
import sys
import time

import pytest

import effscale
from effscale.cli import main
from effscale.search import _keras_tuner as internals
from effscale.model.zoo import load_genotype
from effscale.search import design_variant
from effscale.common.io import read_json
from effscale.search import load_oracle

MICRO = "stem8_head32_res16_relu-mb_r1_k3_s2_e2_c8-mb_r1_k3_s2_e2_c16"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _command(directory, oracle):
    evolution = ["--population", "3", "--tournament", "2"] if oracle == "evolution" else []
    epochs = "2" if oracle == "asha" else "1"  # ASHA: rungs of 1 and 2 epochs; its first trials train 1
    return [sys.executable, "-m", "effscale.cli", "search", "--baseline", MICRO, "--oracle", oracle,
            "--cost", "macs", "--target", "100k", "--trials", "2", "--epochs", epochs, "--dataset", "digits",
            "--project-dir", str(directory), "--seed", "5", *evolution]


def _env():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)


def _trial_state(directory, trial_id):
    path = os.path.join(directory, "tuner", f"trial_{trial_id}", "trial.json")
    return read_json(path) if os.path.exists(path) else None


def _finished_trials(directory):
    out = {}
    for trial_id in range(2):
        state = _trial_state(directory, trial_id)
        if state and state["status"] == "COMPLETED":
            out[str(trial_id)] = (state["score"], state["hyperparameters"]["values"])
    return out


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory):
    """Searches by each effscale oracle, stopped while training their second trial (REINFORCE by
    SIGTERM, the others by SIGKILL), then rerun; REINFORCE's search.json is truncated in between,
    so its rerun needs --repair."""
    base = tmp_path_factory.mktemp("resume")
    import keras_tuner  # noqa: F401 - import TensorFlow now, not while the searches run
    runs = {}
    for oracle in ("evolution", "reinforce", "predictor", "asha", "bayesian-sampled"):
        directory = base / oracle
        log = open(base / f"{oracle}-1.log", "w")
        runs[oracle] = {"dir": directory, "proc": subprocess.Popen(_command(directory, oracle), stdout=log,
                                                                   stderr=subprocess.STDOUT, env=_env(), cwd=ROOT)}
    deadline = time.monotonic() + 400
    pending = set(runs)
    while pending and time.monotonic() < deadline:
        for oracle in list(pending):
            run = runs[oracle]
            assert run["proc"].poll() is None, f"{oracle} search ended before it could be killed"
            state = _trial_state(run["dir"], 1)
            if "seen" not in run and _finished_trials(run["dir"]) and state and state["status"] == "RUNNING":
                run["seen"] = time.monotonic()
            # inside the second trial: it is RUNNING, and a trial of this micro network now lasts ~1 s
            if "seen" in run and time.monotonic() - run["seen"] > 0.25:
                run["proc"].send_signal(signal.SIGTERM if oracle == "reinforce" else signal.SIGKILL)
                run["stopped"] = run["proc"].wait(timeout=60)
                run["stop_log"] = open(base / f"{oracle}-1.log").read()
                pending.discard(oracle)
        time.sleep(0.1)
    assert not pending, "timed out waiting for the second trial"
    for run in runs.values():  # what the killed process left behind
        run["saved"] = read_json(os.path.join(run["dir"], "tuner", "oracle.json"))
        run["finished"] = _finished_trials(run["dir"])
        run["reloaded"] = load_oracle(str(run["dir"]))
    damaged = runs["reinforce"]["dir"] / "search.json"
    damaged.write_text(damaged.read_text()[:50])
    refused = io.StringIO()
    with contextlib.redirect_stderr(refused):
        runs["reinforce"]["refused"] = (main(_command(runs["reinforce"]["dir"], "reinforce")[3:]), refused.getvalue())
    for oracle, run in runs.items():  # rerun the same command (plus --repair where search.json was damaged)
        log = open(base / f"{oracle}-2.log", "w")
        repair = ["--repair"] if oracle == "reinforce" else []
        run["proc"] = subprocess.Popen(_command(run["dir"], oracle) + repair, stdout=log, stderr=subprocess.STDOUT,
                                       env=_env(), cwd=ROOT)
    for oracle, run in runs.items():
        run["rc"] = run["proc"].wait(timeout=400)
        run["log"] = open(base / f"{oracle}-2.log").read()
        run["final"] = load_oracle(str(run["dir"]))
    return runs


@pytest.mark.slow
def test_sigkill_mid_trial_then_rerun_keeps_finished_trials(killed_and_resumed):
    stopped = killed_and_resumed["reinforce"]
    assert stopped["stopped"] == 143 and "Traceback" not in stopped["stop_log"], stopped["stop_log"][-3000:]
    assert stopped["stop_log"].strip().splitlines()[-1] == "effscale: interrupted; rerun the same command to resume"
    code, err = stopped["refused"]  # a damaged search.json: one line that names the repair
    assert code == 2 and len(err.strip().splitlines()) == 1 and "search.json is damaged" in err and "--repair" in err
    assert "repaired " in stopped["log"] and "trial(s) on disk" in stopped["log"]
    assert killed_and_resumed["evolution"]["stopped"] == -signal.SIGKILL
    for oracle, run in killed_and_resumed.items():
        assert run["rc"] == 0, run["log"][-3000:]
        assert "resuming" in run["log"]
        assert list(run["finished"]) == ["0"]  # trial 0 had finished, trial 1 was training
        with open(os.path.join(run["dir"], "trials.csv"), newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert [r["trial_id"] for r in rows] == ["0", "1"]
        assert all(r["status"] == "COMPLETED" for r in rows)
        after = _finished_trials(run["dir"])
        for trial_id, kept in run["finished"].items():
            assert after[trial_id] == kept  # same values, same score: kept, not re-run
        assert sum(line.startswith("trial ") for line in run["log"].splitlines()) == 1  # trial 1, run again
        best = load_genotype(os.path.join(run["dir"], "best_genotype.json"))
        assert best.encode() == max(rows, key=lambda r: float(r["reward"]))["genotype"]
        assert effscale.build(best, design_variant(best), classes=10).output_shape == (None, 10)


@pytest.mark.slow
def test_reloaded_oracle_state_equals_what_was_saved(killed_and_resumed):
    evolution = killed_and_resumed["evolution"]
    saved = evolution["saved"]["evolution"]
    assert [m["trial_id"] for m in saved["population"]] == ["0"]
    assert evolution["reloaded"].population == saved["population"]
    assert evolution["reloaded"]._rng.bit_generator.state == saved["rng"]
    # The members saved before the kill are still the oldest members after the resumed run.
    final = evolution["final"].population
    assert final[: len(saved["population"])] == saved["population"] and len(final) == 2

    reinforce = killed_and_resumed["reinforce"]
    saved = reinforce["saved"]["reinforce"]
    assert saved["updates"] == 1 and saved["logits"]
    assert reinforce["reloaded"].logits == saved["logits"]
    assert reinforce["reloaded"].baseline == saved["baseline"]
    assert reinforce["reloaded"]._rng.bit_generator.state == saved["rng"]
    assert reinforce["final"].updates == 2

    predictor = killed_and_resumed["predictor"]
    assert predictor["reloaded"]._rng.bit_generator.state == predictor["saved"]["predictor"]["rng"]
    bayesian = killed_and_resumed["bayesian-sampled"]
    saved = bayesian["saved"]["sampled_bayesian"]["random_state"]
    reloaded = internals.random_state(bayesian["reloaded"]).get_state(legacy=False)
    assert reloaded["state"]["key"].tolist() == saved["state"]["key"]
    assert reloaded["state"]["pos"] == saved["state"]["pos"]
    asha = killed_and_resumed["asha"]
    assert asha["reloaded"]._rng.bit_generator.state == asha["saved"]["predictor"]["rng"]
    assert asha["saved"]["halving"]["rungs"] == [1, 2] and asha["reloaded"].rungs == (1, 2)
    assert [t.hyperparameters.values["tuner/epochs"] for t in asha["final"].trials.values()] == [1, 1]
    for run in (predictor, asha, bayesian):
        assert len(run["final"].trials) == 2


@pytest.mark.slow
def test_trials_command_prints_trials_and_pareto_front(killed_and_resumed, capsys):
    directory = str(killed_and_resumed["evolution"]["dir"])
    assert main(["trials", directory]) == 0
    out = capsys.readouterr().out
    assert "trials (2):" in out and "Pareto front" in out and "best: trial" in out
    best = read_json(os.path.join(directory, "best_genotype.json"))
    assert best["resolution"] == 16


def _snapshot(directory):
    digest = {}
    for root, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as handle:
                digest[os.path.relpath(path, directory)] = hashlib.sha1(handle.read()).hexdigest()
    return digest


@pytest.mark.slow
def test_bad_input_is_one_line_exit_2_and_leaves_the_project_intact(killed_and_resumed, tmp_path, capsys):
    directory = str(killed_and_resumed["evolution"]["dir"])
    before = _snapshot(directory)
    a_file = tmp_path / "plain.txt"
    a_file.write_text("x")
    common = ["search", "--baseline", MICRO, "--trials", "2", "--epochs", "1", "--seed", "5",
              "--population", "3", "--tournament", "2", "--target", "100k"]
    cases = {
        "unknown oracle": (common + ["--oracle", "annealing", "--project-dir", directory], "unknown oracle"),
        "negative target": (["search", "--baseline", MICRO, "--target", "-5", "--project-dir", directory],
                            "target must be a positive"),
        "unwritable project dir": (common + ["--project-dir", str(a_file / "sub")], "cannot be created"),
        "unparsable genotype": (["search", "--baseline", "stem8_head32_res16_relu-mb_r1_k4x", "--project-dir",
                                 directory], "token"),
        "different search in the dir": (common + ["--oracle", "evolution", "--cost", "params",
                                                  "--project-dir", directory], "different search"),
        "unknown cost": (common + ["--cost", "flops", "--project-dir", directory], "unknown cost"),
    }
    for label, (argv, message) in cases.items():
        assert main(argv) == 2, label
        err = capsys.readouterr().err.strip()
        assert err.startswith("effscale: error:") and message in err and len(err.splitlines()) == 1, (label, err)
    assert main(["trials", str(tmp_path / "nothing")]) == 2
    assert _snapshot(directory) == before
    assert not os.path.exists(a_file / "sub")


def test_bad_input_exit_code_from_the_real_command(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "effscale.cli", "search", "--baseline", "tiny", "--oracle",
                           "annealing", "--project-dir", str(tmp_path / "p")], capture_output=True, text=True,
                          env=_env(), cwd=ROOT, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("effscale: error: unknown oracle 'annealing'")
    assert not os.path.exists(tmp_path / "p")


def test_a_bad_oracle_option_is_one_line_and_writes_nothing(tmp_path, capsys):
    """Option values are checked by the oracle itself, which is built before the project folder
    is touched; an option the chosen oracle does not read is refused, not silently dropped."""
    # Out-of-range numbers are refused by the flag's own type (argparse: exit 2) before the oracle
    # sees them; the oracle's own check is reached through oracle_options (tests/test_oracles.py).
    cases = {
        "population too small": (["--oracle", "evolution", "--population", "0"], "--population: expected an integer"),
        "supernet epochs zero": (["--oracle", "differentiable", "--supernet-epochs", "0"], "--supernet-epochs"),
        "population for reinforce": (["--oracle", "reinforce", "--population", "5"],
                                     "--population applies to --oracle evolution only"),
    }
    for label, (flags, message) in cases.items():
        project = tmp_path / label.replace(" ", "-")
        argv = ["search", "--baseline", "tiny", "--trials", "1", *flags, "--project-dir", str(project)]
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse's refusal of a flag's value
            code = exit_.code
        assert code == 2, label
        err = capsys.readouterr().err.strip()
        assert err.startswith("effscale: error:") and message in err and len(err.splitlines()) == 1, (label, err)
        assert not project.exists(), label
