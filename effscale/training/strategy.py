"""Pick a tf.distribute strategy, a mixed-precision policy, and the batch and learning rate
that go with the number of replicas.

``auto`` looks at what this process can see, in this order:

1. a TPU that ``TPUClusterResolver`` finds (``tpu`` argument, ``TPU_NAME`` or a local TPU
   device) -> ``TPUStrategy``;
2. ``TF_CONFIG`` naming more than one worker -> ``MultiWorkerMirroredStrategy`` (trained by
   effscale's own distributed loop, because Keras 3 ``fit`` fails under it, keras#20585);
3. more than one GPU -> ``MirroredStrategy``;
4. otherwise the default strategy (one device).

The choice itself is the pure function :func:`choose_strategy` of an :class:`Environment`:

>>> choose_strategy(Environment(workers=1, gpus=4))
'mirrored'
>>> choose_strategy(Environment(workers=2, gpus=4))
'multiworker'
>>> choose_strategy(Environment(tpu="grpc://10.0.0.2:8470", workers=2))
'tpu'
>>> choose_strategy(Environment())
'default'
>>> mixed_precision_policy("auto", "tpu"), mixed_precision_policy("auto", "gpu"), mixed_precision_policy("auto", "cpu")
('mixed_bfloat16', 'mixed_float16', 'float32')
>>> global_batch_size(32, replicas=4), global_batch_size(128, replicas=4, scope="global")
((128, 32), (128, 32))
>>> scale_learning_rate(0.016, global_batch=512, base_batch=256)
0.032
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field

from effscale.common.errors import UserError

STRATEGIES = ("auto", "default", "mirrored", "multiworker", "tpu")
MIXED_PRECISION_MODES = ("auto", "off", "float16", "bfloat16")
LOOPS = ("auto", "fit", "custom")


@dataclass(frozen=True)
class Execution:
    """How a training runs: ``strategy`` (a name of :data:`STRATEGIES` or a
    ``tf.distribute.Strategy``), ``mixed_precision`` (:data:`MIXED_PRECISION_MODES`), the training
    ``loop`` (``auto``: Keras ``fit``, or the custom loop under multiworker; ``fit``; ``custom``),
    the ``tpu`` to connect to, and ``cpu_replicas``: split a GPU-less machine's CPU into that many
    replicas for ``mirrored``.

    >>> Execution.of("default"), Execution("mirrored", cpu_replicas=2).cpu_replicas
    (Execution(strategy='default', mixed_precision='auto', loop='auto', tpu=None, cpu_replicas=None), 2)
    >>> Execution(loop="eager")
    Traceback (most recent call last):
    ...
    effscale.common.errors.UserError: unknown training loop 'eager': expected one of auto, fit, custom
    """

    strategy: object = "auto"
    mixed_precision: str = "auto"
    loop: str = "auto"
    tpu: str | None = None
    cpu_replicas: int | None = None

    def __post_init__(self):
        if self.loop not in LOOPS:
            raise UserError(f"unknown training loop {self.loop!r}: expected one of {', '.join(LOOPS)}")
        if self.mixed_precision not in MIXED_PRECISION_MODES:
            raise UserError(f"unknown mixed precision {self.mixed_precision!r}: expected one of "
                            f"{', '.join(MIXED_PRECISION_MODES)}")

    @classmethod
    def of(cls, value) -> "Execution":
        """``value`` itself, or the execution of a strategy name or object with every other field at its default."""
        return value if isinstance(value, cls) else cls(strategy=value)



@dataclass(frozen=True)
class Environment:
    """What a process can see of its hardware and cluster."""

    tpu: str | None = None          # the TPU the resolver found (its master address), if any
    workers: int = 1                # workers (chief included) that TF_CONFIG names
    task_type: str | None = None
    task_index: int = 0
    gpus: int = 0
    cpus: int = 1                   # physical CPU devices
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        return {"tpu": self.tpu, "workers": self.workers, "task_type": self.task_type,
                "task_index": self.task_index, "gpus": self.gpus, "cpus": self.cpus, "notes": list(self.notes)}


def read_tf_config(text: str | None = None) -> dict:
    """The parsed ``TF_CONFIG`` (``{}`` when unset); UserError when it is not JSON."""
    text = os.environ.get("TF_CONFIG", "") if text is None else text
    if not text.strip():
        return {}
    try:
        config = json.loads(text)
    except (ValueError, RecursionError) as error:  # also a 5000-digit number, a 10,000-deep nesting
        raise UserError(f"TF_CONFIG is not valid JSON: {str(error).splitlines()[0][:200]}") from None
    if not isinstance(config, dict):
        raise UserError("TF_CONFIG must be a JSON object with 'cluster' and 'task'")
    _check_cluster(config)
    return config


def check_tf_config() -> None:
    """Refuse a malformed ``TF_CONFIG`` (when set) with one line, before a command starts.

    >>> os.environ["TF_CONFIG"] = '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": "one"}}'
    >>> check_tf_config()
    Traceback (most recent call last):
    ...
    effscale.common.errors.UserError: TF_CONFIG task.index must be an integer in 0..1, got 'one'
    >>> del os.environ["TF_CONFIG"]; check_tf_config()
    """
    read_tf_config()


def _check_cluster(config: dict) -> None:
    from effscale.common.checks import check_int, shorten

    cluster = config.get("cluster", {})
    if cluster is None:
        cluster = {}
    if not isinstance(cluster, dict):
        raise UserError(f"TF_CONFIG cluster must map a task type to its addresses, got {shorten(cluster)}")
    for kind, addresses in cluster.items():
        if isinstance(addresses, dict):  # a sparse cluster: {"worker": {"1": "host:port"}}
            addresses = list(addresses.values())
        if not (isinstance(addresses, list) and all(isinstance(a, str) and a.rpartition(":")[2].isdigit()
                                                    and a.rpartition(":")[2].isascii() for a in addresses)):
            raise UserError(f"TF_CONFIG cluster.{str(kind)[:40]} must be a list of 'host:port' addresses, "
                            f"got {shorten(addresses)}")
    task = config.get("task", {})
    if task is None:
        task = {}
    if not isinstance(task, dict):
        raise UserError(f"TF_CONFIG task must be an object with 'type' and 'index', got {shorten(task)}")
    kind = task.get("type")
    if kind is not None and not isinstance(kind, str):
        raise UserError(f"TF_CONFIG task.type must be a task type such as 'worker', got {shorten(kind)}")
    if cluster and kind is not None and kind not in cluster:
        raise UserError(f"TF_CONFIG task.type {shorten(kind)} is not in its cluster "
                        f"({', '.join(map(str, cluster)) or 'empty'})")
    index = 0 if task.get("index") is None else task["index"]
    positions = len(cluster.get(kind) or []) if kind is not None and cluster else None
    if positions:
        check_int(index, "TF_CONFIG task.index", 0, positions - 1)
    else:
        check_int(index, "TF_CONFIG task.index", 0)


def cluster_size(config: dict) -> tuple[int, str | None, int]:
    """(workers including the chief, this task's type, this task's index) of a TF_CONFIG.

    >>> cluster_size({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}})
    (2, 'worker', 1)
    """
    cluster = config.get("cluster", {}) or {}
    workers = len(cluster.get("worker", []) or []) + len(cluster.get("chief", []) or [])
    task = config.get("task", {}) or {}
    return max(workers, 1), task.get("type"), int(task.get("index", 0) or 0)


def find_tpu(tpu: str | None = None):
    """A connected ``TPUClusterResolver``, or ``(None, reason)`` when no TPU is found."""
    import tensorflow as tf

    name = tpu if tpu is not None else os.environ.get("TPU_NAME")
    local = os.path.exists("/dev/accel0") or os.path.exists("/dev/vfio/0")
    if not name and not local:
        return None, "no TPU named (tpu argument or TPU_NAME) and no local TPU device"
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=name or "local")
        resolver.cluster_spec()  # raises when the TPU cannot be reached
        return resolver, None
    except Exception as error:  # ValueError, URLError, NotFoundError ...
        return None, f"TPU {name or 'local'!r} not found: {type(error).__name__}: {str(error)[:200]}"


def detect_environment(tpu: str | None = None, probe_tpu: bool = True) -> Environment:
    """What this process can see: a TPU (through the resolver), TF_CONFIG, GPUs, CPUs.
    It lists physical devices only, so TensorFlow's runtime stays uninitialized (collective
    ops for MultiWorkerMirroredStrategy must be configured before it starts)."""
    import tensorflow as tf

    notes = []
    tpu_master = None
    if probe_tpu:
        resolver, reason = find_tpu(tpu)
        if resolver is not None:
            tpu_master = resolver.master() or "local"
        elif tpu is not None or os.environ.get("TPU_NAME"):
            notes.append(reason)
    workers, task_type, task_index = cluster_size(read_tf_config())
    return Environment(tpu=tpu_master, workers=workers, task_type=task_type, task_index=task_index,
                       gpus=len(tf.config.list_physical_devices("GPU")),
                       cpus=len(tf.config.list_physical_devices("CPU")), notes=tuple(notes))


def choose_strategy(environment: Environment, name: str = "auto") -> str:
    """The strategy name ``auto`` resolves to in ``environment`` (other names pass through).

    >>> choose_strategy(Environment(gpus=1))
    'default'
    >>> choose_strategy(Environment(), "mirrored")
    'mirrored'
    """
    if name not in STRATEGIES:
        raise UserError(f"unknown strategy {name!r}: expected one of {', '.join(STRATEGIES)}")
    if name != "auto":
        return name
    if environment.tpu:
        return "tpu"
    if environment.workers > 1:
        return "multiworker"
    if environment.gpus > 1:
        return "mirrored"
    return "default"


def resolve_strategy(name: str = "auto", devices: list[str] | None = None, tpu: str | None = None,
                     cpu_replicas: int | None = None):
    """A ``tf.distribute.Strategy`` for ``name`` (see the module docstring for ``auto``).

    ``mirrored`` mirrors over ``devices``, else over all GPUs, else over all logical CPU
    devices: ``cpu_replicas=N`` splits the CPU into N logical devices first (before
    TensorFlow's runtime starts); without it, a CPU-only ``mirrored`` warns that it runs one
    replica. ``multiworker`` reads TF_CONFIG, warns that TensorFlow's gRPC server listens on
    every interface, and waits for every worker to start.

    >>> resolve_strategy("default").num_replicas_in_sync
    1
    """
    import tensorflow as tf

    if name not in STRATEGIES:
        raise UserError(f"unknown strategy {name!r}: expected one of {', '.join(STRATEGIES)}")
    if cpu_replicas is not None and not (isinstance(cpu_replicas, int) and 1 <= cpu_replicas <= 256):
        raise UserError(f"cpu_replicas must be an integer in 1..256, got {cpu_replicas!r}")
    environment = detect_environment(tpu, probe_tpu=name in ("auto", "tpu"))
    kind = choose_strategy(environment, name)
    if cpu_replicas and cpu_replicas > 1 and not (kind == "mirrored" and environment.gpus == 0):
        raise UserError(f"--cpu-replicas {cpu_replicas} applies to strategy 'mirrored' on a machine without GPUs "
                        f"(this one resolves to {kind!r} with {environment.gpus} GPU(s))")
    if kind == "tpu":
        resolver, reason = find_tpu(tpu)
        if resolver is None:
            raise UserError(f"strategy 'tpu': {reason}")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    if kind == "multiworker":
        if environment.workers < 2 and not read_tf_config():
            raise UserError("strategy 'multiworker' needs TF_CONFIG naming the cluster and this task")
        _warn(_listening_warning(read_tf_config()))
        return tf.distribute.MultiWorkerMirroredStrategy()
    if kind == "mirrored":
        if devices is None:
            if environment.gpus == 0 and cpu_replicas and cpu_replicas > 1:
                split_cpu(cpu_replicas)
            gpus = tf.config.list_logical_devices("GPU")
            devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
            if len(devices) == 1 and not gpus:
                _warn("strategy 'mirrored' on a machine without GPUs runs one replica; "
                      "pass --cpu-replicas N (cpu_replicas=N) to split the CPU into N replicas")
        return tf.distribute.MirroredStrategy(devices)
    return tf.distribute.get_strategy()


def split_cpu(replicas: int) -> None:
    """Split the first CPU into ``replicas`` logical devices; must run before TensorFlow's runtime starts."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)
    except RuntimeError:
        present = len(tf.config.list_logical_devices("CPU"))
        if present != replicas:
            raise UserError(f"cannot split the CPU into {replicas} replicas: TensorFlow already started with "
                            f"{present} CPU device(s); split it before anything else runs") from None


def _warn(message: str) -> None:
    import sys

    print(f"effscale: warning: {message}", file=sys.stderr)


def _listening_warning(config: dict) -> str:
    """TensorFlow's gRPC server binds to every interface whatever host TF_CONFIG names.

    >>> _listening_warning({"cluster": {"worker": ["127.0.0.1:2222", "127.0.0.1:2223"]},
    ...                     "task": {"type": "worker", "index": 1}})[:63]
    "TensorFlow's multi-worker gRPC server listens on port 2223 of e"
    """
    task = config.get("task", {}) or {}
    addresses = (config.get("cluster", {}) or {}).get(task.get("type"), []) or []
    index = int(task.get("index", 0) or 0)
    address = str(addresses[index]) if 0 <= index < len(addresses) else "?:?"
    host, _, port = address.rpartition(":")
    return (f"TensorFlow's multi-worker gRPC server listens on port {port} of every network interface, "
            f"not only on {host or 'the host'} that TF_CONFIG names (TensorFlow has no option to bind it); "
            "keep that port behind a firewall or on a private network")


def strategy_name(strategy) -> str:
    """'default' | 'mirrored' | 'multiworker' | 'tpu' | the class name of another strategy."""
    kind = type(strategy).__name__
    return {"_DefaultDistributionStrategy": "default", "MirroredStrategy": "mirrored",
            "MultiWorkerMirroredStrategy": "multiworker", "CollectiveAllReduceStrategy": "multiworker",
            "TPUStrategy": "tpu", "TPUStrategyV2": "tpu"}.get(kind, kind)


def is_multiworker(strategy) -> bool:
    return strategy_name(strategy) == "multiworker"


def is_chief(strategy=None) -> bool:
    """True on the worker that writes checkpoints and results: the chief, or worker 0 when
    the cluster has no chief, or any single-process run.

    >>> is_chief()
    True
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is not None and getattr(resolver, "task_type", None):
        task_type, task_id = resolver.task_type, int(resolver.task_id or 0)
        has_chief = "chief" in resolver.cluster_spec().as_dict()
    else:
        config = read_tf_config()
        task = config.get("task") or {}
        if not task:
            return True
        task_type, task_id = task.get("type"), int(task.get("index", 0) or 0)
        has_chief = bool((config.get("cluster") or {}).get("chief"))
    if task_type == "chief":
        return True
    if task_type == "worker":
        return not has_chief and task_id == 0
    return False  # evaluator, parameter server


def device_kind(strategy) -> str:
    """'tpu', 'gpu' or 'cpu': where the strategy's replicas run."""
    if strategy_name(strategy) == "tpu":
        return "tpu"
    try:
        devices = list(strategy.extended.worker_devices)
    except (RuntimeError, AttributeError):  # the default strategy has no device list
        devices = []
    if any("GPU" in d.upper() for d in devices):
        return "gpu"
    if not devices:
        import tensorflow as tf

        return "gpu" if tf.config.list_logical_devices("GPU") else "cpu"
    return "cpu"


def mixed_precision_policy(mode: str = "auto", device: str = "cpu") -> str:
    """The Keras dtype policy for ``mode`` on ``device`` ('tpu' | 'gpu' | 'cpu').

    ``auto``: bfloat16 on TPU, float16 (with loss scaling) on GPU, float32 on CPU.
    """
    if mode not in MIXED_PRECISION_MODES:
        raise UserError(f"unknown mixed precision {mode!r}: expected one of {', '.join(MIXED_PRECISION_MODES)}")
    if mode == "off":
        return "float32"
    if mode == "float16":
        return "mixed_float16"
    if mode == "bfloat16":
        return "mixed_bfloat16"
    return {"tpu": "mixed_bfloat16", "gpu": "mixed_float16"}.get(device, "float32")


@contextlib.contextmanager
def dtype_policy(policy: str):
    """Set Keras' global dtype policy inside the block and restore the previous one after."""
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def global_batch_size(batch_size: int, replicas: int, scope: str = "per_replica") -> tuple[int, int]:
    """(global batch, per-replica batch).

    ``scope='per_replica'``: ``batch_size`` is each replica's, so the global batch grows with
    the replicas. ``scope='global'``: ``batch_size`` is split over the replicas; it must be at
    least the replica count and a multiple of it.
    """
    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise UserError(f"batch size must be a positive integer, got {batch_size!r}")
    if scope == "per_replica":
        return batch_size * replicas, batch_size
    if scope != "global":
        raise UserError(f"batch scope must be 'per_replica' or 'global', got {scope!r}")
    if batch_size < replicas:
        raise UserError(f"batch size {batch_size} is smaller than the {replicas} replicas of the strategy: "
                        "every replica needs at least one image")
    if batch_size % replicas:
        raise UserError(f"batch size {batch_size} does not divide over {replicas} replicas; "
                        f"use a multiple of {replicas}")
    return batch_size, batch_size // replicas


def scale_learning_rate(learning_rate: float, global_batch: int, base_batch: int = 256) -> float:
    """Linear scaling: ``learning_rate`` is for ``base_batch`` images; scale it to ``global_batch``."""
    return round(learning_rate * global_batch / base_batch, 12)
