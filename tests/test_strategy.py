"""Strategy resolution from the environment this process sees (TF_CONFIG, TPU_NAME, devices),
set for real rather than mocked; the two-device and two-worker cases run in
tests/test_train.py, where they also train."""

import json

import pytest

from effscale.common.errors import UserError
from effscale.training.strategy import (Environment, choose_strategy, cluster_size, detect_environment, dtype_policy,
                               global_batch_size, is_chief, mixed_precision_policy, read_tf_config,
                               resolve_strategy, scale_learning_rate, strategy_name)


def _tf_config(workers=2, index=0, task="worker", chief=False):
    cluster = {"worker": [f"localhost:{20000 + i}" for i in range(workers)]}
    if chief:
        cluster["chief"] = ["localhost:19999"]
    return json.dumps({"cluster": cluster, "task": {"type": task, "index": index}})


@pytest.mark.parametrize("environment, expected", [
    (Environment(), "default"),
    (Environment(gpus=1), "default"),
    (Environment(gpus=2), "mirrored"),
    (Environment(workers=2), "multiworker"),
    (Environment(workers=3, gpus=8), "multiworker"),
    (Environment(tpu="grpc://10.1.2.3:8470", workers=4, gpus=2), "tpu"),
])
def test_auto_order_tpu_then_workers_then_gpus(environment, expected):
    assert choose_strategy(environment, "auto") == expected
    for name in ("default", "mirrored", "multiworker", "tpu"):
        assert choose_strategy(environment, name) == name  # explicit names pass through


def test_unknown_strategy_name():
    with pytest.raises(UserError, match="unknown strategy 'horovod'"):
        choose_strategy(Environment(), "horovod")
    with pytest.raises(UserError, match="unknown strategy"):
        resolve_strategy("horovod")


def test_tf_config_is_read_from_the_environment(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.delenv("TPU_NAME", raising=False)
    plain = detect_environment()
    assert (plain.workers, plain.tpu, plain.gpus) == (1, None, 0) and plain.cpus >= 1
    assert choose_strategy(plain) == "default" and is_chief()

    monkeypatch.setenv("TF_CONFIG", _tf_config(workers=3, index=2))
    seen = detect_environment()
    assert (seen.workers, seen.task_type, seen.task_index) == (3, "worker", 2)
    assert choose_strategy(seen) == "multiworker"
    assert not is_chief()  # worker 2 of a chief-less cluster

    monkeypatch.setenv("TF_CONFIG", _tf_config(workers=2, index=0))
    assert is_chief()  # worker 0 is the chief when there is none
    monkeypatch.setenv("TF_CONFIG", _tf_config(workers=2, index=0, chief=True))
    assert not is_chief() and detect_environment().workers == 3
    monkeypatch.setenv("TF_CONFIG", _tf_config(workers=2, index=0, task="chief", chief=True))
    assert is_chief()
    monkeypatch.setenv("TF_CONFIG", _tf_config(workers=1, index=0))
    assert choose_strategy(detect_environment()) == "default"  # one worker is not a cluster

    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(UserError, match="TF_CONFIG is not valid JSON"):
        read_tf_config()
    assert cluster_size({}) == (1, None, 0)


def test_tpu_resolver_that_finds_nothing(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.setenv("TPU_NAME", "no-such-tpu-effscale-test")
    seen = detect_environment()
    assert seen.tpu is None and "no-such-tpu-effscale-test" in seen.notes[0]
    assert strategy_name(resolve_strategy("auto")) == "default"
    with pytest.raises(UserError, match="strategy 'tpu': TPU 'no-such-tpu-effscale-test' not found"):
        resolve_strategy("tpu")
    monkeypatch.delenv("TPU_NAME")
    with pytest.raises(UserError, match="no TPU named"):
        resolve_strategy("tpu")


def test_default_strategy_and_its_name(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    strategy = resolve_strategy("default")
    assert strategy.num_replicas_in_sync == 1 and strategy_name(strategy) == "default"


def test_batch_and_learning_rate_scale_with_replicas():
    assert global_batch_size(32, 1) == (32, 32)
    assert global_batch_size(32, 8) == (256, 32)  # per-replica batch: the global batch grows
    assert global_batch_size(256, 8, scope="global") == (256, 32)
    with pytest.raises(UserError, match="smaller than the 2 replicas"):
        global_batch_size(1, 2, scope="global")
    with pytest.raises(UserError, match="does not divide over 4 replicas"):
        global_batch_size(6, 4, scope="global")
    with pytest.raises(UserError, match="positive integer"):
        global_batch_size(0, 1)
    assert scale_learning_rate(0.016, 4096) == pytest.approx(0.256)  # EfficientNet's batch 4096
    assert scale_learning_rate(0.1, 128, base_batch=256) == pytest.approx(0.05)


def test_mixed_precision_policy_by_device():
    assert [mixed_precision_policy("auto", d) for d in ("tpu", "gpu", "cpu")] == \
        ["mixed_bfloat16", "mixed_float16", "float32"]
    assert mixed_precision_policy("off", "tpu") == "float32"
    assert mixed_precision_policy("float16", "cpu") == "mixed_float16"
    with pytest.raises(UserError, match="unknown mixed precision"):
        mixed_precision_policy("fp8")
    import keras

    before = keras.config.dtype_policy().name
    with dtype_policy("mixed_bfloat16"):
        assert keras.config.dtype_policy().name == "mixed_bfloat16"
    assert keras.config.dtype_policy().name == before
