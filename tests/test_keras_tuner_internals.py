"""Keras Tuner internals stay behind effscale/search/_keras_tuner.py, and all of them exist."""

import os
import re

import keras_tuner

from effscale.search._keras_tuner import missing_internals

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
