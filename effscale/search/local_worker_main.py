"""The entry point of one local worker process (``effscale.search.local_workers`` starts it):
``python -m effscale.search.local_worker_main CONFIG_PICKLE PROJECT_DIR WORKER_TIMEOUT CHIEF_PID``.
It trains trials for its chief until the search ends, and ends on its own once the chief is gone.
"""

from __future__ import annotations

import os
import pickle
import shutil
import sys
import threading
import time

from effscale.common.errors import UserError


def _exit_with_the_chief(chief_pid: int, folder: str, poll_s: float = 1.0) -> None:
    """A worker's watch: once its chief is gone (it was started by it), the worker removes the
    chief's private folder, which a killed chief could not, and ends, instead of waiting for a
    chief that will not answer."""
    def watch():
        while True:
            time.sleep(poll_s)
            if os.getppid() != chief_pid:
                shutil.rmtree(folder, ignore_errors=True)
                os._exit(3)

    threading.Thread(target=watch, daemon=True).start()


def _worker_main(argv: list[str]) -> int:
    config_file, project_dir, worker_timeout, chief_pid = argv
    _exit_with_the_chief(int(chief_pid), os.path.dirname(config_file))
    from effscale.common.checks import one_line
    from effscale.common.console import quiet_tensorflow
    from effscale.search.run import run_search

    quiet_tensorflow()
    with open(config_file, "rb") as handle:
        config = pickle.load(handle)
    try:
        run_search(config, project_dir, verbose=0, worker_timeout=float(worker_timeout))
    except UserError as error:
        print(f"effscale: error: {one_line(error)}", file=sys.stderr, flush=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1:]))
