"""Local worker processes for one search: ``run_search(..., workers=N)`` / ``effscale search
--workers N``. This process serves the oracle as Keras Tuner's chief on a free loopback port and
N worker processes, started here, train the trials, each with ``cores / N`` TensorFlow threads.

A proxy trial of a small network is mostly single-threaded Python (tracing) and many small ops
that do not fill two cores from one process, so two one-thread workers keep both cores busy
(benchmarks/trial_cost.py, docs/benchmarks.md "Search throughput").

A worker reads the search's configuration from a private file this process writes, so the
Python API and the command line start workers the same way. A worker whose chief is gone (killed
with SIGKILL, say) exits on its own instead of waiting for it; when every worker has ended before
the search did, the chief stops with one line naming the last worker's error, and rerunning the
same command resumes with every finished trial kept.

>>> worker_threads(2, cores=2), worker_threads(3, cores=2), worker_threads(1, cores=16)
(1, 1, 16)
"""

from __future__ import annotations

import contextlib
import os
import pickle
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from effscale.common.errors import UserError

WORKERS_MAX = 64
_VARIABLES = ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT")


def check_workers(workers) -> int:
    """``workers`` as a count (0: no local workers; this process trains), else UserError.

    >>> check_workers(2)
    2
    >>> check_workers(-1)
    Traceback (most recent call last):
    ...
    effscale.common.errors.UserError: workers must be an integer from 0 to 64, got -1
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or not 0 <= workers <= WORKERS_MAX:
        raise UserError(f"workers must be an integer from 0 to {WORKERS_MAX}, got {workers!r}")
    if workers and any(name in os.environ for name in _VARIABLES):
        present = ", ".join(name for name in _VARIABLES if name in os.environ)
        raise UserError(f"{workers} local worker(s) would start their own chief; unset {present}, or "
                        "start the chief and workers yourself without --workers")
    return workers


def worker_threads(workers: int, cores: int | None = None) -> int:
    """TensorFlow threads per worker: the cores this process may use, shared out, at least one."""
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, workers))


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now (the chief binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def chief_environment() -> dict[str, str]:
    """The ``KERASTUNER_*`` settings that make this process the chief on a free loopback port."""
    return {"KERASTUNER_TUNER_ID": "chief", "KERASTUNER_ORACLE_IP": "127.0.0.1",
            "KERASTUNER_ORACLE_PORT": str(free_port())}


class LocalWorkers:
    """``count`` worker processes of the search ``config`` in ``project_dir``, started at once;
    :meth:`alive` says whether any still runs, :meth:`failure` what the last one to fail said,
    :meth:`stop` ends the rest (also on leaving a ``with`` block)."""

    def __init__(self, config, project_dir: str, count: int, worker_timeout: float):
        self.folder = tempfile.mkdtemp(prefix="effscale-workers-")  # private (0700): the config
        config_file = os.path.join(self.folder, "config.pickle")
        with open(config_file, "wb") as handle:
            pickle.dump(config, handle)
        threads = str(worker_threads(count))
        self.processes, self.logs = [], []
        for index in range(count):
            env = dict(os.environ, KERASTUNER_TUNER_ID=f"worker{index}", TF_NUM_INTRAOP_THREADS=threads,
                       TF_NUM_INTEROP_THREADS=threads, OMP_NUM_THREADS=threads)
            env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
            log = os.path.join(self.folder, f"worker{index}.log")
            with open(log, "w") as stderr:
                self.processes.append(subprocess.Popen(
                    [sys.executable, "-m", "effscale.search.local_worker_main", config_file, project_dir,
                     repr(float(worker_timeout)), str(os.getpid())],
                    env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr))
            self.logs.append(log)

    def alive(self) -> bool:
        return any(process.poll() is None for process in self.processes)

    def failure(self) -> str | None:
        """The last line a failed worker wrote (or its exit status), None if none failed."""
        for process, log in zip(self.processes, self.logs):
            if process.poll():
                with open(log, errors="replace") as handle:
                    lines = [line.strip() for line in handle if line.strip()]
                said = lines[-1] if lines else f"exit status {process.returncode}"
                return said.removeprefix("effscale: error: ")
        return None

    def stop(self, grace_s: float = 10.0) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + grace_s
        for process in self.processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def start_workers(config, project_dir: str, count: int, worker_timeout: float):
    """A :class:`LocalWorkers` context, or a context giving None when ``count`` is 0."""
    if not count:
        return contextlib.nullcontext()
    return LocalWorkers(config, project_dir, count, worker_timeout)
