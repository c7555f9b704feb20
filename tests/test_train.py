"""Training and evaluation for real, on the bundled digits set, with a tiny variant:

* one process, default strategy: >= 90% validation accuracy within the test;
* SIGKILL after the first epoch, rerun: resumes at the next epoch, ends as good;
* MirroredStrategy over two logical CPU devices: the same accuracy band;
* two worker processes with MultiWorkerMirroredStrategy (TF_CONFIG, free ports), killed and
  rerun: checkpoints by the chief only, resumed, identical final weights, the same accuracy band;
* bad input: exit code 2.

Every run uses the same recipe and global batch 64, so their accuracies are comparable.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from effscale.common.migrations import FORMAT_VERSION
from effscale import cli
from effscale.common.io import read_json

VARIANT = "w=0.25,d=0.25,r=16"
EPOCHS = 4
BAND = 0.05  # accuracies of one recipe under different strategies / interruptions
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _env(**extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def _train_command(out, *extra):
    return [sys.executable, "-m", "effscale.cli", "train", "tiny", "--variant", VARIANT, "--dataset", "digits",
            "--epochs", str(EPOCHS), "--batch-size", "64", "--latency-runs", "0", "--out", str(out), *extra]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted one-process run (default strategy, Keras fit)."""
    from effscale.training.recipe import Recipe
    from effscale.training.train import train_variant

    out = tmp_path_factory.mktemp("reference")
    record = train_variant("tiny", VARIANT, data="digits",
                           recipe=Recipe(epochs=EPOCHS, batch_size=64, batch_scope="global"), strategy="default",
                           out_dir=str(out), verbose=0, latency_runs=3)
    return out, record


@pytest.mark.slow
def test_tiny_variant_reaches_90_percent_on_digits(reference, assert_every_number_names_its_split):
    out, record = reference
    assert record["test_top1"] >= 0.90, record["history"]
    assert record["test_top5"] >= record["test_top1"] and record["test_loss"] < 1.0
    assert record["validation_top1"] >= 0.85 and record["test_examples"] == record["data"]["test_size"] == 360
    assert record["validation_examples"] == record["data"]["validation_size"]
    assert_every_number_names_its_split(record)
    assert record["epochs_done"] == EPOCHS and [h["epoch"] for h in record["history"]] == [1, 2, 3, 4]
    assert record["resumed_from_epochs"] == []
    assert record["strategy"] == {"name": "default", "replicas": 1, "chief": True, "loop": "fit",
                                  "synchronized_batch_norm_layers": 0}
    assert record["mixed_precision"] == "float32" and record["global_batch"] == 64
    from effscale.model.cost import cost

    analytic = cost("tiny", VARIANT, classes=10)
    assert record["params"] == analytic.parameters and record["multiply_adds"] == analytic.multiply_adds
    assert 0 < record["latency_seconds"] < 1 and record["train_images_per_second"] > 0
    assert record["wall_seconds"] >= record["train_seconds"] > 0
    # files: the inference model, the results, the last backup
    assert read_json(out / "results.json") == {"format_version": FORMAT_VERSION, **json.loads(json.dumps(record))}
    assert read_json(out / "checkpoint" / "state.json")["epoch"] == EPOCHS
    assert os.path.isfile(out / "model.keras")


@pytest.mark.slow
def test_evaluate_reloads_the_model_and_reproduces_its_accuracy(reference, capsys, assert_every_number_names_its_split):
    out, record = reference
    assert cli.main(["evaluate", str(out), "--latency-runs", "3", "--throughput-steps", "2"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{out}: test top-1 ") and "multiply-adds" in line and "latency" in line
    evaluation = read_json(out / "evaluation.json")
    assert evaluation["split"] == "test" and evaluation["test_examples"] == record["data"]["test_size"]
    assert evaluation["test_top1"] == pytest.approx(record["test_top1"], abs=1e-6)  # same split, same weights
    assert evaluation["test_top5"] == pytest.approx(record["test_top5"], abs=1e-6)
    assert_every_number_names_its_split(evaluation)
    assert evaluation["params"] == record["params"] and evaluation["multiply_adds"] == record["multiply_adds"]
    assert evaluation["latency_seconds"] > 0 and evaluation["train_images_per_second"] > 0
    assert cli.main(["evaluate", str(out), "--split", "validation", "--latency-runs", "0",
                     "--throughput-steps", "0", "--json"]) == 0
    validation = json.loads(capsys.readouterr().out)
    assert validation["validation_top1"] == pytest.approx(record["validation_top1"], abs=1e-6)
    assert validation["validation_examples"] == record["validation_examples"] and "test_top1" not in validation


@pytest.mark.slow
def test_rerunning_a_finished_run_returns_its_record(reference):
    from effscale.training.recipe import Recipe
    from effscale.training.train import train_variant

    out, record = reference
    again = train_variant("tiny", VARIANT, recipe=Recipe(epochs=EPOCHS, batch_size=64, batch_scope="global"),
                          strategy="default", out_dir=str(out), verbose=0)
    assert again == json.loads(json.dumps(record))


@pytest.mark.slow
def test_sigkill_after_first_epoch_then_rerun_resumes(reference, tmp_path):
    out = tmp_path / "killed"
    log = open(tmp_path / "first.log", "w")
    process = subprocess.Popen(_train_command(out, "--strategy", "default", "--verbose", "2"), cwd=ROOT,
                               env=_env(), stdout=log, stderr=subprocess.STDOUT)
    state_path = out / "checkpoint" / "state.json"
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if state_path.exists() and read_json(state_path)["epoch"] >= 1:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    assert process.wait(timeout=60) == -signal.SIGKILL, open(tmp_path / "first.log").read()[-3000:]
    killed_state = read_json(state_path)
    killed_at = killed_state["epoch"]
    assert 1 <= killed_at < EPOCHS  # killed mid-run ...
    assert not (out / "results.json").exists() and not (out / "model.keras").exists()

    rerun = subprocess.run(_train_command(out, "--strategy", "default", "--verbose", "2"), cwd=ROOT, env=_env(),
                           capture_output=True, text=True, timeout=400)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"resuming {out} at epoch {killed_at + 1}/{EPOCHS}" in rerun.stdout
    assert f"Epoch {killed_at + 1}/{EPOCHS}" in rerun.stdout and "Epoch 1/" not in rerun.stdout
    record = read_json(out / "results.json")
    assert record["resumed_from_epochs"] == [killed_at]
    assert record["epochs_done"] == EPOCHS and [h["epoch"] for h in record["history"]] == [1, 2, 3, 4]
    assert record["history"][:killed_at] == killed_state["history"]  # the first epochs were not redone
    # the optimizer state came back too: its step count (which drives the schedule) went on
    steps = record["steps_per_epoch"]
    assert killed_state["optimizer_iterations"] == killed_at * steps
    assert read_json(out / "checkpoint" / "state.json")["optimizer_iterations"] == EPOCHS * steps
    _, uninterrupted = reference
    assert record["test_top1"] >= 0.90 and abs(record["test_top1"] - uninterrupted["test_top1"]) <= BAND


@pytest.mark.slow
def test_damaged_newest_backup_falls_back_to_the_one_before(reference, tmp_path, capsys):
    """A truncated state.json and a truncated newest weights file: the rerun says so, resumes
    from the intact backup of the epoch before, and ends with the complete history."""
    import shutil

    from effscale.training.recipe import Recipe
    from effscale.training.train import train_variant

    source, record = reference
    out = tmp_path / "damaged"
    shutil.copytree(source, out)
    for name in ("results.json", "model.keras", "evaluation.json"):
        if (out / name).exists():
            (out / name).unlink()
    folder = out / "checkpoint"
    assert sorted(p.name for p in folder.iterdir()) == [
        "epoch-0003.json", "epoch-0003.weights.h5", "epoch-0004.json", "epoch-0004.weights.h5", "state.json"]
    (folder / "state.json").write_text((folder / "state.json").read_text()[:40])
    weights = folder / "epoch-0004.weights.h5"
    weights.write_bytes(weights.read_bytes()[:4096])
    resumed = train_variant("tiny", VARIANT, data="digits",
                            recipe=Recipe(epochs=EPOCHS, batch_size=64, batch_scope="global"), strategy="default",
                            out_dir=str(out), verbose=0, latency_runs=0)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"{folder / 'state.json'} is unreadable" in err and f"{weights} is unreadable" in err
    assert "resuming from the intact backup of epoch 3" in err
    assert resumed["resumed_from_epochs"] == [3] and resumed["epochs_done"] == EPOCHS
    assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3, 4]
    assert resumed["history"][:3] == record["history"][:3]  # the intact epochs were not redone
    assert abs(resumed["test_top1"] - record["test_top1"]) <= BAND
    assert read_json(folder / "state.json")["epoch"] == EPOCHS  # the damaged files were replaced


@pytest.mark.slow
def test_ctrl_c_and_sigterm_stop_with_one_line_and_a_resumable_state(tmp_path):
    """SIGINT (Ctrl-C) and SIGTERM after the first backup: exit 130 / 143, one line, no
    traceback, and the newest backup intact for the rerun (resuming is tested above)."""
    from effscale.training.train import read_state

    runs = {}
    for number, name in ((signal.SIGINT, "interrupt"), (signal.SIGTERM, "terminate")):
        out = tmp_path / name
        runs[number] = (out, subprocess.Popen(_train_command(out, "--strategy", "default", "--verbose", "0"),
                                              cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                              text=True))
    deadline = time.time() + 300
    pending = dict(runs)
    while pending and time.time() < deadline:
        for number, (out, process) in list(pending.items()):
            state_path = out / "checkpoint" / "state.json"
            if process.poll() is not None or (state_path.exists() and read_json(state_path)["epoch"] >= 1):
                process.send_signal(number)
                del pending[number]
        time.sleep(0.02)
    for number, (out, process) in runs.items():
        _, err = process.communicate(timeout=120)
        assert process.returncode == {signal.SIGINT: 130, signal.SIGTERM: 143}[number], err[-3000:]
        ours = [line for line in err.splitlines() if line.startswith("effscale")]
        assert "Traceback" not in err and ours == ["effscale: interrupted; rerun the same command to resume"], err
        state = read_state(str(out), say=lambda line: pytest.fail(line))  # nothing damaged
        assert 1 <= state["epoch"] < EPOCHS


MIRRORED_SCRIPT = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from effscale import cli
    from effscale.training.strategy import resolve_strategy, strategy_name
    from effscale.training.recipe import Recipe
    from effscale.training.train import train_variant
    variant, out, small = sys.argv[1], sys.argv[2], sys.argv[3]
    result = {"auto": strategy_name(resolve_strategy("auto"))}  # two CPU devices, no GPU: default
    strategy = resolve_strategy("mirrored")
    result["replicas"] = strategy.num_replicas_in_sync
    result["devices"] = list(strategy.extended.worker_devices)
    result["small_batch_exit"] = cli.main(["train", "tiny", "--variant", variant, "--strategy", "mirrored",
                                           "--batch-size", "1", "--out", small, "--verbose", "0"])
    record = train_variant("tiny", variant, recipe=Recipe(epochs=%d, batch_size=64, batch_scope="global"),
                           strategy=strategy, out_dir=out, verbose=0, latency_runs=0)
    result["record"] = record
    print("RESULT " + json.dumps(result))
""" % EPOCHS)


@pytest.mark.slow
def test_mirrored_over_two_logical_cpus_matches_default(reference, tmp_path):
    run = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT, VARIANT, str(tmp_path / "mirrored"),
                          str(tmp_path / "small")], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=500)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.split("RESULT ", 1)[1])
    assert result["auto"] == "default"
    assert result["replicas"] == 2 and [d.split("/")[-1] for d in result["devices"]] == ["device:CPU:0", "device:CPU:1"]
    assert result["small_batch_exit"] == 2
    assert "batch size 1 is smaller than the 2 replicas" in run.stderr
    record = result["record"]
    assert record["strategy"]["name"] == "mirrored" and record["strategy"]["replicas"] == 2
    assert record["per_replica_batch"] == 32 and record["global_batch"] == 64
    assert record["strategy"]["synchronized_batch_norm_layers"] > 0
    _, default = reference
    assert record["test_top1"] >= 0.90 and abs(record["test_top1"] - default["test_top1"]) <= BAND


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _start_workers(outs, *extra):
    ports = _free_ports(2)
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    processes = []
    for index, out in enumerate(outs):
        config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        processes.append(subprocess.Popen(
            _train_command(out, "--strategy", "auto", "--verbose", "0", "--json", *extra), cwd=ROOT,
            env=_env(TF_CONFIG=config), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return processes


@pytest.mark.slow
def test_two_workers_killed_then_resumed_end_with_identical_weights(reference, tmp_path):
    """Two worker processes (TF_CONFIG, free localhost ports, strategy auto), killed with
    SIGKILL after the chief's first backup, rerun: they resume from the chief's checkpoint,
    finish with identical weights on both workers and the accuracy of one process."""
    shared, other = tmp_path / "shared", tmp_path / "worker1-own"
    # first attempt: worker 1 gets a folder of its own, to show that only the chief writes
    first = _start_workers([shared, other])
    state_path = shared / "checkpoint" / "state.json"
    deadline = time.time() + 400
    try:
        while time.time() < deadline and all(p.poll() is None for p in first):
            if state_path.exists() and read_json(state_path)["epoch"] >= 1:
                break
            time.sleep(0.02)
    finally:
        for process in first:
            process.send_signal(signal.SIGKILL)
    errors = [p.communicate()[1] for p in first]
    assert [p.returncode for p in first] == [-signal.SIGKILL] * 2, errors[0][-2000:] + errors[1][-2000:]
    killed_at = read_json(state_path)["epoch"]
    assert 1 <= killed_at < EPOCHS
    assert not other.exists() or not any(other.iterdir())  # the non-chief wrote nothing
    # second attempt: both workers see the shared folder, as on shared storage
    second = _start_workers([shared, shared])
    outputs = []
    for process in second:
        try:
            stdout, stderr = process.communicate(timeout=540)
        except subprocess.TimeoutExpired:
            for p in second:
                p.kill()
            raise
        assert process.returncode == 0, stderr[-3000:]
        assert "listens on port" in stderr and "of every network interface" in stderr  # TF cannot bind one
        outputs.append(json.loads(stdout[stdout.index("{"):]))
    chief, worker = outputs
    for record in outputs:
        assert record["strategy"]["name"] == "multiworker" and record["strategy"]["replicas"] == 2
        assert record["strategy"]["loop"] == "custom" and record["epochs_done"] == EPOCHS
        assert record["global_batch"] == 64 and record["per_replica_batch"] == 32
        assert record["resumed_from_epochs"] == [killed_at]
    assert chief["strategy"]["chief"] and not worker["strategy"]["chief"]
    assert chief["weights_sha256"] == worker["weights_sha256"]  # every weight, BN statistics included
    assert chief["test_top1"] == worker["test_top1"]
    results = read_json(shared / "results.json")
    assert results["weights_sha256"] == chief["weights_sha256"]
    assert [h["epoch"] for h in results["history"]] == [1, 2, 3, 4]
    _, single = reference
    assert chief["test_top1"] >= 0.88 and abs(chief["test_top1"] - single["test_top1"]) <= BAND


def test_bad_input_exits_2(tmp_path, capsys):
    out = str(tmp_path / "out")
    base = ["train", "tiny", "--variant", VARIANT, "--out", out, "--verbose", "0", "--strategy", "default"]
    assert cli.main(base + ["--dataset", "imagenet-typo"]) == 2
    assert "unknown dataset 'imagenet-typo'" in capsys.readouterr().err
    (tmp_path / "empty" / "cats").mkdir(parents=True)
    (tmp_path / "empty" / "dogs").mkdir()
    assert cli.main(base + ["--dataset", str(tmp_path / "empty")]) == 2
    assert "has no images" in capsys.readouterr().err
    assert cli.main(base + ["--dataset", "tfds:no_such_dataset_effscale"]) == 2
    assert "unknown tensorflow-datasets dataset" in capsys.readouterr().err
    assert cli.main(base + ["--dataset", "digits", "--batch-size", "5000"]) == 2
    assert "larger than the" in capsys.readouterr().err
    assert cli.main(["train", "tiny", "--variant", VARIANT, "--out", out, "--strategy", "horovod"]) == 2
    assert "unknown strategy 'horovod'" in capsys.readouterr().err
    assert cli.main(["train", "tiny", "--variant", "b99", "--out", out]) == 2
    assert cli.main(["train", "not_a_genotype_x", "--out", out]) == 2
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "tiny", "--out", out, "--epochs", "0"])
    assert exit_info.value.code == 2
    assert cli.main(["evaluate", str(tmp_path / "nothing-here")]) == 2
    assert cli.main(["evaluate", str(tmp_path)]) == 2  # a folder without model.keras
    assert "no trained model" in capsys.readouterr().err
    assert not os.path.exists(out)  # rejected runs leave no folder behind


@pytest.mark.slow
def test_out_folder_of_another_run_is_refused(reference, capsys):
    out, _ = reference
    assert cli.main(["train", "tiny", "--variant", "w=0.5,d=0.25,r=16", "--out", str(out), "--verbose", "0",
                     "--strategy", "default", "--batch-size", "64"]) == 2
    assert "holds another run (it differs in variant)" in capsys.readouterr().err
