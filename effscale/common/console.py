"""A quiet console: TensorFlow's C++, absl and CUDA start-up logging kept off the terminal.

TensorFlow 2.21 logs through absl before ``absl::InitializeLog()`` is called, and such lines
ignore ``TF_CPP_MIN_LOG_LEVEL`` (abseil/abseil-cpp#1718): they go straight to file descriptor
2 while ``import tensorflow`` runs. :func:`quiet_tensorflow` therefore sets the level for what
comes later and imports TensorFlow with descriptor 2 pointed at a temporary file, which is
replayed only when the import fails. Python-side loggers (``tensorflow``, ``absl``) are set to
errors only. The CLI calls it first unless ``--verbose`` asks for everything.

>>> wants_verbose_logs(["train", "tiny", "--verbose", "2"]), wants_verbose_logs(["demo", "--verbose"])
(True, True)
>>> wants_verbose_logs(["train", "tiny", "--verbose", "1"]), wants_verbose_logs(["family", "--quiet"])
(False, False)
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile


def wants_verbose_logs(argv: list[str]) -> bool:
    """True when the command line asks for the most output: a bare ``--verbose`` or ``--verbose 2``."""
    for index, token in enumerate(argv):
        if token.startswith("--verbose="):
            return token.split("=", 1)[1] not in ("0", "1")
        if token == "--verbose":
            following = argv[index + 1] if index + 1 < len(argv) else ""
            return following not in ("0", "1")
    return False


@contextlib.contextmanager
def stderr_descriptor_to_file():
    """Point file descriptor 2 at a temporary file inside the block; replay it if the block raises."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            capture.seek(0)
            sys.stderr.write(capture.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def native_logs_quieted():
    """Inside the block, native (C++) lines to file descriptor 2 are held back, unless the user
    asked for TensorFlow's logs (``TF_CPP_MIN_LOG_LEVEL`` unset or below 3)."""
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "3":
        return stderr_descriptor_to_file()
    return contextlib.nullcontext()


class _QuietLoader:
    """Runs the real loader of ``tensorflow`` with descriptor 2 held back, then quiets its loggers."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        with stderr_descriptor_to_file():
            self.loader.exec_module(module)
        _quiet_python_loggers()


class _QuietTensorFlowFinder:
    """A meta path finder that hands ``import tensorflow`` (whoever asks first) to _QuietLoader."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        import importlib.machinery

        self.remove()
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec

    def remove(self):
        if self in sys.meta_path:
            sys.meta_path.remove(self)


def _quiet_python_loggers() -> None:
    import logging

    import absl.logging

    absl.logging.set_verbosity(absl.logging.ERROR)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


def quiet_tensorflow() -> None:
    """Keep TensorFlow's start-up lines and later INFO/WARNING lines off the console. TensorFlow
    is not imported here: whichever import comes first runs quietly (commands that fail on bad
    input stay fast).

    >>> quiet_tensorflow()
    >>> import logging, tensorflow; logging.getLogger("tensorflow").level == logging.ERROR
    True
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules:
        _quiet_python_loggers()
    elif not any(isinstance(finder, _QuietTensorFlowFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowFinder())
