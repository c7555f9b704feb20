"""Atomic writes keep the user's umask: 0644 under the usual 022, not the temporary file's 0600."""

import os
import stat

import pytest

import effscale
from effscale.common.io import atomic_path, write_json, write_text


@pytest.fixture
def umask():
    old = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writes_honour_the_umask(tmp_path, umask, mask, expected):
    umask(mask)
    write_json(tmp_path / "state.json", {"epoch": 1})
    write_text(tmp_path / "report.md", "# report\n")
    assert mode(tmp_path / "state.json") == expected
    assert mode(tmp_path / "report.md") == expected
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")] == []


def test_a_keras_model_saved_atomically_honours_the_umask(tmp_path, umask):
    umask(0o022)
    model = effscale.build("tiny", "w=0.25,d=0.25,r=16", classes=3)
    target = tmp_path / "model.keras"
    with atomic_path(target) as temporary:
        model.save(temporary)
    assert mode(target) == 0o644
    (tmp_path / "plain.txt").write_text("x")
    assert mode(target) == mode(tmp_path / "plain.txt")  # what a plain open() beside it gets
