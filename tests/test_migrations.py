"""Saved state files carry ``format_version`` (effscale/common/migrations.py). A file without
one, or with a version this effscale does not know, is refused with one line and exit 2 by the
command that reads it (in-process), for every kind of state file, and is left as it was.

tests/fixtures/before_package/ was written before formats were versioned, by the code at commit
4088564 (effscale/search.py, effscale/cli.py as single modules), with the bundled digits data:

* ``search/``: ``effscale search --baseline MICRO --oracle evolution --cost macs --target 100k
  --trials 2 --epochs 1 --dataset digits --seed 5 --population 3 --tournament 2 --project-dir search``
* ``family_run/``: ``effscale family --config family.json --out family_run --quiet``, SIGKILLed as
  soon as ``state.json`` recorded the search stage done.

Such folders resumed until format versions came (tests/test_resume_old_layout.py, removed with
the upgrade shims); now they are refused with one line, which the tests below check.
"""

import json
import os
import shutil

import pytest

from effscale import cli
from effscale.common import migrations
from effscale.common.errors import UserError

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "before_package")
MICRO = "stem8_head32_res16_relu-mb_r1_k3_s2_e2_c8-mb_r1_k3_s2_e2_c16"
TRAIN = ["--variant", "w=0.25,d=0.25,r=16", "--dataset", "digits", "--strategy", "default", "--verbose", "0",
         "--latency-runs", "0"]
BAD_VERSIONS = [None, 99, "1"]  # missing, newer than this effscale, not a version


def set_version(path, version) -> str:
    """Rewrite the JSON file at ``path`` without ``format_version`` (None) or with ``version``;
    return its new text."""
    with open(path) as handle:
        data = json.load(handle)
    data.pop("format_version", None)
    if version is not None:
        data["format_version"] = version
    text = json.dumps(data)
    with open(path, "w") as handle:
        handle.write(text)
    return text


def refused(capsys, code, path) -> str:
    """The one error line of a command refused for ``path``'s format version."""
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line.startswith("effscale")]
    assert code == 2, err
    assert "Traceback" not in err and len(lines) == 1 and lines[0].startswith("effscale: error: "), err
    assert "format_version" in lines[0] and os.path.basename(path) in lines[0], lines[0]
    return lines[0]


def unchanged(path, text) -> bool:
    with open(path) as handle:
        return handle.read() == text


# -- the module itself -------------------------------------------------------------------------
def test_a_state_file_round_trips_and_every_bad_version_is_one_line(tmp_path):
    path = str(tmp_path / "search.json")
    migrations.write_state(path, {"config": {"oracle": "random"}})
    with open(path) as handle:
        assert json.load(handle) == {"format_version": migrations.FORMAT_VERSION, "config": {"oracle": "random"}}
    assert migrations.read_state(path, "search") == {"config": {"oracle": "random"}}
    for version in (None, 0, 99, "1", True, 1.0):
        data = {"config": {}} if version is None else {"format_version": version, "config": {}}
        with pytest.raises(UserError) as caught:
            migrations.current(data, path, "search")
        assert "format_version" in str(caught.value) and path in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(UserError, match="newer effscale"):
        migrations.current({"format_version": 99}, path, "search")
    with pytest.raises(UserError, match="not a search file"):
        migrations.current([], path, "search")


def test_an_upgrade_rule_runs_for_an_older_version(monkeypatch):
    """What a future format change does: bump FORMAT_VERSION and add a rule for the old one."""
    monkeypatch.setattr(migrations, "FORMAT_VERSION", 2)
    monkeypatch.setitem(migrations.UPGRADES, ("search", 1), lambda data: {**data, "seeds": data.get("seeds", 1)})
    assert migrations.current({"format_version": 1, "trials": 3}, "x.json", "search") == {"trials": 3, "seeds": 1}
    assert migrations.current({"format_version": 2, "trials": 3}, "x.json", "search") == {"trials": 3}
    assert migrations.stamped({"trials": 3}) == {"format_version": 2, "trials": 3}


# -- search.json ---------------------------------------------------------------------------------
SEARCH = ["search", "--baseline", MICRO, "--oracle", "evolution", "--cost", "macs", "--target", "100k",
          "--trials", "3", "--epochs", "1", "--dataset", "digits", "--seed", "5", "--population", "3",
          "--tournament", "2"]


@pytest.mark.parametrize("version", BAD_VERSIONS)
def test_a_search_project_of_another_format_is_refused(tmp_path, capsys, version):
    project = tmp_path / "search"
    shutil.copytree(os.path.join(FIXTURES, "search"), project)
    path = str(project / "search.json")
    text = set_version(path, version)
    line = refused(capsys, cli.main([*SEARCH, "--project-dir", str(project)]), path)
    if version is None:
        assert "before saved formats were versioned" in line
    assert unchanged(path, text) and sorted(os.listdir(project)) == sorted(os.listdir(os.path.join(FIXTURES, "search")))
    refused(capsys, cli.main(["trials", str(project)]), path)


# -- a family run: state.json and results.json ---------------------------------------------------
@pytest.mark.parametrize("version", BAD_VERSIONS)
def test_a_family_run_of_another_format_is_refused(tmp_path, capsys, version):
    run = tmp_path / "family_run"
    shutil.copytree(os.path.join(FIXTURES, "family_run"), run)
    state = str(run / "state.json")
    text = set_version(state, version)
    refused(capsys, cli.main(["family", "--config", os.path.join(FIXTURES, "family.json"), "--out", str(run),
                              "--quiet"]), state)
    refused(capsys, cli.main(["status", str(run)]), state)
    assert unchanged(state, text)
    results = str(run / "results.json")
    text = set_version(results, version)
    refused(capsys, cli.main(["report", str(run)]), results)
    assert unchanged(results, text) and not (run / "report.md").exists()


# -- a training: run.json, results.json, checkpoint state; a fine-tuning's record ---------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("trained") / "run"
    assert cli.main(["train", "tiny", "--out", str(out), "--epochs", "1", *TRAIN]) == 0
    return out


@pytest.mark.slow
def test_every_file_a_training_writes_is_stamped(trained):
    names = ["run.json", "results.json", "checkpoint/state.json", "checkpoint/epoch-0001.json"]
    for name in names:
        with open(trained / name) as handle:
            assert json.load(handle)["format_version"] == migrations.FORMAT_VERSION, name


@pytest.mark.slow
@pytest.mark.parametrize("version", BAD_VERSIONS)
def test_a_training_of_another_format_is_refused(tmp_path, capsys, trained, version):
    out = tmp_path / "run"
    shutil.copytree(trained, out)
    run_json = str(out / "run.json")
    text = set_version(run_json, version)
    refused(capsys, cli.main(["train", "tiny", "--out", str(out), "--epochs", "2", *TRAIN]), run_json)
    assert unchanged(run_json, text)
    set_version(run_json, migrations.FORMAT_VERSION)

    states = [str(out / "checkpoint" / name) for name in os.listdir(out / "checkpoint") if name.endswith(".json")]
    texts = [set_version(path, version) for path in states]
    refused(capsys, cli.main(["train", "tiny", "--out", str(out), "--epochs", "2", *TRAIN]),
            str(out / "checkpoint" / "state.json"))
    assert all(unchanged(p, t) for p, t in zip(states, texts))
    assert not (out / "checkpoint" / "epoch-0002.json").exists()

    results = str(out / "results.json")
    text = set_version(results, version)
    refused(capsys, cli.main(["evaluate", str(out), "--latency-runs", "0"]), results)
    assert unchanged(results, text) and not (out / "evaluation.json").exists()


@pytest.mark.slow
@pytest.mark.parametrize("version", BAD_VERSIONS)
def test_a_fine_tuning_record_of_another_format_is_refused(tmp_path, capsys, trained, version):
    out = tmp_path / "tuned"
    shutil.copytree(trained, out)
    record = str(out / "finetune.json")
    shutil.copy(out / "results.json", record)
    set_version(record, version)
    refused(capsys, cli.main(["export", str(out), "--format", "keras", "--latency-runs", "0"]), record)
    assert not (out / "model-export.keras").exists() and not (out / "model-export.keras.json").exists()


# -- a proxy file and a proxy check; the supernet's logits -------------------------------------
@pytest.mark.parametrize("version", BAD_VERSIONS)
def test_a_proxy_file_of_another_format_is_refused(tmp_path, capsys, version):
    from effscale.search.proxy import ProxySettings, write_proxy_file

    path = str(tmp_path / "proxy.json")
    write_proxy_file(path, ProxySettings(epochs=1), resolution=16)
    set_version(path, version)
    project = tmp_path / "search"
    command = [a for i, a in enumerate(SEARCH) if "--epochs" not in SEARCH[max(i - 1, 0):i + 1]]
    refused(capsys, cli.main([*command, "--project-dir", str(project), "--proxy", path]), path)
    assert not project.exists()


@pytest.mark.parametrize("version", BAD_VERSIONS)
def test_a_proxy_check_of_another_format_is_refused(tmp_path, capsys, version):
    project = tmp_path / "check"
    project.mkdir()
    path = str(project / "proxy_check.json")
    with open(path, "w") as handle:
        json.dump({"config": {}} if version is None else {"format_version": version, "config": {}}, handle)
    refused(capsys, cli.main(["proxy", "--project-dir", str(project), "--architectures", "3", "--seeds", "2",
                              "--quiet"]), path)
    assert os.listdir(project) == ["proxy_check.json"]


def test_supernet_logits_of_another_format_are_refused(tmp_path):
    from effscale.search.oneshot.differentiable import load_logits

    path = tmp_path / "logits.json"
    migrations.write_state(str(path), {"epochs": [{"epoch": 1}]})
    assert load_logits(str(tmp_path)) == [{"epoch": 1}]
    set_version(str(path), None)
    with pytest.raises(UserError, match="logits.json has no format_version"):
        load_logits(str(tmp_path))
