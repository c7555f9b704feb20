"""One line, not a TensorFlow traceback, when a multi-worker peer stops mid-run.

When a worker of a ``MultiWorkerMirroredStrategy`` run dies, the survivors' collective ops
fail with ``UnavailableError`` (or ``DeadlineExceededError`` / ``AbortedError`` /
``CancelledError``) once TensorFlow's coordination service misses the peer's heartbeats.
:func:`peer_lost_message` turns such an error into one line naming the worker (task type,
index and its TF_CONFIG address where the error names it) and how to resume.

>>> peer_lost_message(ValueError("x")) is None
True
"""

import json
import os
import re

_TASK = re.compile(r"/job:(\w+)/replica:\d+/task:(\d+)")
_NAMES = ("UnavailableError", "DeadlineExceededError", "AbortedError", "CancelledError")


def _address(job: str, index: int) -> str:
    try:
        return json.loads(os.environ.get("TF_CONFIG", "{}"))["cluster"][job][index]
    except (ValueError, KeyError, IndexError, TypeError):
        return ""


def peer_lost_message(error: BaseException) -> str | None:
    """The one-line message for a lost peer, or None when ``error`` is not one.

    >>> import tensorflow as tf
    >>> peer_lost_message(tf.errors.UnavailableError(None, None, "task /job:worker/replica:0/task:1 gone"))[:30]
    'multi-worker peer worker 1 (it'
    """
    if type(error).__name__ not in _NAMES or not type(error).__module__.startswith("tensorflow"):
        return None
    own = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}").get("task", {})
    tasks = [(j, int(i)) for j, i in _TASK.findall(str(error))
             if (j, int(i)) != (own.get("type"), own.get("index"))]
    if tasks:
        job, index = tasks[0]
        address = _address(job, index)
        who = f"worker {index}" if job == "worker" else f"{job} {index}"
        where = f" (its address {address})" if address else " (its address is not known)"
        peer = f"multi-worker peer {who}{where} stopped"
    else:
        peer = "a multi-worker peer stopped (TensorFlow did not say which)"
    return (f"{peer}: {type(error).__name__}; rerun the same command on every worker "
            f"to resume from the last checkpoint")
