"""Family config files that parse but mean something else: a key written twice (PyYAML keeps
the last one silently), a YAML alias bomb (a few hundred bytes that expand into gigabytes), a
huge file. Each is one line naming the file and the key, exit 2, nothing written."""

import os
import time

import pytest

from effscale import cli

BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(8))  # 10**9 leaves


@pytest.mark.parametrize("name, text, named", [
    ("top.yaml", "dataset: digits\nseed: 1\nseed: 2\n", "key 'seed' is repeated (line 3)"),
    ("nested.yaml", "dataset: digits\nsearch:\n  trials: 2\n  epochs: 1\n  trials: 3\n",
     "key 'trials' is repeated (line 5)"),
    ("top.toml", 'dataset = "digits"\nseed = 1\nseed = 2\n', "key 'seed' is repeated (line 3)"),
    ("nested.toml", 'dataset = "digits"\n[training]\nepochs = 1\nepochs = 2\n', "key 'epochs' is repeated (line 4)"),
    ("top.json", '{"dataset": "digits", "seed": 1, "seed": 2}', "key 'seed' is repeated"),
    ("bomb.yaml", "dataset: digits\n" + BOMB, "uses the alias *a"),
    ("alias.yaml", "dataset: &d digits\nbaseline: tiny\nsearch: {dataset: *d}\n", "uses the alias *d"),
])
def test_repeated_keys_and_aliases_are_refused_with_the_key_named(tmp_path, capsys, name, text, named):
    path = tmp_path / name
    path.write_text(text)
    out = tmp_path / "run"
    start = time.perf_counter()
    code = cli.main(["family", "--config", str(path), "--out", str(out)])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1, lines
    assert named in lines[0] and name in lines[0], lines[0]
    assert not out.exists()
    assert time.perf_counter() - start < 5  # the bomb is refused at its first alias, not expanded


def test_the_same_config_without_repeats_is_accepted(tmp_path):
    from effscale.family.config import FamilyConfig

    path = tmp_path / "ok.yaml"
    path.write_text("dataset: digits\nseed: 2\nsearch:\n  trials: 3\ntraining:\n  epochs: 1\n")
    config = FamilyConfig.load(str(path))
    assert (config.seed, config.search.trials, config.training.epochs) == (2, 3, 1)


def test_a_huge_config_file_is_refused_before_it_is_parsed(tmp_path, capsys):
    path = tmp_path / "huge.yaml"
    path.write_text("dataset: digits\n" + "# padding\n" * 200_000)
    assert cli.main(["family", "--config", str(path), "--out", str(tmp_path / "run")]) == 2
    line = capsys.readouterr().err.strip()
    assert "more than 1,048,576" in line and "\n" not in line
    assert not os.path.exists(tmp_path / "run")


@pytest.mark.parametrize("text", [
    '{"kind": "KIND", "settings": {}, "resolution": Infinity, "width": 1, "train_fraction": 1}',
    '{"kind": "KIND", "settings": {}, "resolution": 16, "width": NaN, "train_fraction": 1}',
    "[" * 100_000 + "]" * 100_000,
    '{"kind": "KIND", "resolution": ' + "9" * 5000 + "}",
])
def test_a_hostile_proxy_file_is_one_line(tmp_path, capsys, text):
    from effscale.search.proxy import PROXY_FILE_KIND

    path = tmp_path / "proxy.json"
    path.write_text(text.replace("KIND", PROXY_FILE_KIND))
    out = tmp_path / "search"
    assert cli.main(["search", "--baseline", "tiny", "--proxy", str(path), "--project-dir", str(out)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "proxy file" in lines[0] and len(lines[0]) < 400, lines
    assert not out.exists()
