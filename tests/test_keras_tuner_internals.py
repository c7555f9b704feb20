"""Keras Tuner internals stay behind effscale/search/_keras_tuner.py, and all of them exist;
tests use no private Keras or Keras Tuner module."""

import os
import re

import keras_tuner

from effscale.search._keras_tuner import missing_internals, private_names

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_keras_tuner_internal_effscale_relies_on_exists():
    missing = missing_internals()
    assert not missing, (f"keras-tuner {keras_tuner.__version__} lacks internals effscale relies on: "
                         f"{', '.join(missing)}; adapt effscale/search/_keras_tuner.py or install the range "
                         "pinned in pyproject.toml")


def test_a_missing_internal_is_named(monkeypatch):
    monkeypatch.delattr(keras_tuner.Oracle, "_duplicate")
    assert "Oracle._duplicate" in missing_internals()


def test_only_the_internals_module_imports_keras_tuner_src():
    offenders = []
    for folder, _, files in os.walk(os.path.join(ROOT, "effscale")):
        for name in files:
            path = os.path.join(folder, name)
            if name.endswith(".py") and name != "_keras_tuner.py":
                with open(path) as handle:
                    if re.search(r"keras_tuner\.src\b", handle.read()):
                        offenders.append(os.path.relpath(path, ROOT))
    assert not offenders, f"import keras_tuner.src only in effscale/search/_keras_tuner.py: {offenders}"


def test_the_pinned_range_holds_the_installed_keras_tuner():
    with open(os.path.join(ROOT, "pyproject.toml")) as handle:
        pin = re.search(r'"keras-tuner>=([\d.]+),<([\d.]+)"', handle.read())
    assert pin, "pyproject.toml pins keras-tuner to a range"
    version = tuple(int(p) for p in keras_tuner.__version__.split(".")[:3])
    low, high = (tuple(int(p) for p in v.split(".")) for v in pin.groups())
    assert low <= version < high


def _python_files(*folders):
    for top in folders:
        for folder, _, files in os.walk(os.path.join(ROOT, top)):
            for name in files:
                if name.endswith(".py"):
                    yield os.path.join(folder, name)


def private_uses(path: str, names) -> list[str]:
    """``path:line name`` for every attribute access, definition or quoted use of ``names``."""
    pattern = re.compile(r"(?:\.|\bdef\s+|[\"'])(%s)\b" % "|".join(map(re.escape, sorted(names))))
    with open(path) as handle:
        return [f"{os.path.relpath(path, ROOT)}:{number} {match.group(1)}"
                for number, line in enumerate(handle, 1) for match in pattern.finditer(line)]


def test_private_keras_tuner_members_are_used_only_through_the_internals_module():
    names = private_names()
    assert {"_duplicate", "_save_trial", "_make_gpr", "_random_state", "_retry_queue"} <= names
    skip = {os.path.join(ROOT, "effscale", "search", "_keras_tuner.py"), os.path.abspath(__file__)}
    offenders = [use for path in _python_files("effscale", "benchmarks", "tests", "recipes") if path not in skip
                 for use in private_uses(path, names)]
    assert not offenders, ("private keras-tuner members outside effscale/search/_keras_tuner.py (add an accessor "
                           f"there and list the member): {offenders}")


def test_the_private_use_scan_finds_a_use(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("def f(oracle):\n    return oracle._duplicate({}) or getattr(oracle, '_retry_queue')\n"
                     "def _save_trial(self, trial):\n    pass\nx = oracle.duplicate_count\n")
    uses = [use.split(" ")[1] for use in private_uses(str(probe), private_names())]
    assert uses == ["_duplicate", "_retry_queue", "_save_trial"]


def test_tests_import_no_private_keras_or_keras_tuner_module():
    pattern = re.compile(r"^\s*(?:from|import)\s+(keras|keras_tuner)\.src\b", re.MULTILINE)
    offenders = []
    for path in _python_files("tests", "benchmarks", "recipes"):
        with open(path) as handle:
            offenders += [f"{os.path.relpath(path, ROOT)}: {m.group(0).strip()}"
                          for m in pattern.finditer(handle.read())]
    assert not offenders, ("use public names (keras.applications, keras_tuner, effscale/search/_keras_tuner.py): "
                           f"{offenders}")


def test_no_private_tensorflow_or_keras_module_in_the_package():
    pattern = re.compile(r"\b(tensorflow\.python|keras\.src)\b")
    offenders = []
    for path in _python_files("effscale", "benchmarks", "recipes"):
        with open(path) as handle:
            offenders += [f"{os.path.relpath(path, ROOT)}:{n}"
                          for n, line in enumerate(handle, 1) if pattern.search(line)]
    assert not offenders, f"private TensorFlow / Keras modules used: {offenders}"
