"""The family pipeline end to end: search -> scale -> train -> report, killed and resumed."""

import hashlib
import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from html.parser import HTMLParser

import pytest
import yaml

from effscale import cli
from effscale.family.config import FamilyConfig
from effscale.common.errors import UserError
from effscale.family.pipeline import run_family, run_status
from effscale.search.proxy import ProxySettings, write_proxy_file

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}

MINIATURE = {
    "dataset": "digits",
    "baseline": "tiny",
    "search": {"oracle": "evolution", "cost": "macs", "target": 1.0e6, "trials": 2, "epochs": 1,
               "resolution": 16, "width": 0.25},
    "scaling": {"family": "phi=0;phi=1", "base": "w=0.5,d=0.5,r=16"},
    "training": {"epochs": 2, "batch_size": 64},
}


def tree_digest(path) -> str:
    digest = hashlib.sha256()
    for root, dirs, files in sorted(os.walk(path)):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            digest.update(full.encode())
            with open(full, "rb") as handle:
                digest.update(handle.read())
    return digest.hexdigest()


def read_state(run_dir):
    try:
        with open(os.path.join(run_dir, "state.json")) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def family_command(config_path, run_dir):
    return [sys.executable, "-m", "effscale.cli", "family", "--config", str(config_path), "--out", str(run_dir),
            "--quiet"]


@pytest.fixture(scope="module")
def resumed_run(tmp_path_factory):
    """A miniature family run killed (SIGKILL) during its second variant's training, then rerun."""
    folder = tmp_path_factory.mktemp("family")
    config_path = folder / "family.yaml"
    # The search trains through a proxy file (cosine, half the training data) with two seeds per trial.
    write_proxy_file(str(folder / "proxy.json"), ProxySettings(epochs=1, schedule="cosine"), resolution=16,
                     width=0.25, train_fraction=0.5)
    config = {**MINIATURE, "search": {**MINIATURE["search"], "proxy": str(folder / "proxy.json"), "seeds": 2}}
    config_path.write_text(yaml.safe_dump(config))
    run_dir = folder / "run"
    process = subprocess.Popen(family_command(config_path, run_dir), env=ENV, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, umask=0o022)
    deadline = time.time() + 600
    killed_state = None
    while time.time() < deadline and process.poll() is None:
        state = read_state(run_dir)
        second = (state or {}).get("stages", {}).get("train:phi1", {})
        if second.get("status") == "running":
            time.sleep(4)  # well inside its training
            process.send_signal(signal.SIGKILL)
            process.wait()
            killed_state = read_state(run_dir)
            killed_state["first_member_digest"] = tree_digest(run_dir / "variants" / "phi0")
            break
        time.sleep(0.5)
    assert killed_state is not None, f"never saw the second variant training: {process.stderr.read()[-2000:]}"
    # Not quiet: the report's times are compared with the ones this rerun prints.
    finished = subprocess.run(family_command(config_path, run_dir)[:-1], env=ENV, capture_output=True, text=True,
                              timeout=900, umask=0o022)
    assert finished.returncode == 0, finished.stderr[-3000:]
    (folder / "console.txt").write_text(finished.stdout)
    return run_dir, killed_state, read_state(run_dir)


@pytest.mark.slow
def test_killed_run_resumes_without_retraining_the_first_variant(resumed_run):
    run_dir, killed, final = resumed_run
    assert killed["stages"]["train:phi0"]["status"] == "done"
    assert killed["stages"]["train:phi1"]["status"] == "running"
    stages = final["stages"]
    assert stages["search"]["attempts"] == 1
    assert stages["train:phi0"]["attempts"] == 1                                  # not retrained
    assert stages["train:phi0"]["finished"] == killed["stages"]["train:phi0"]["finished"]
    assert stages["train:phi1"]["attempts"] == 2 and stages["train:phi1"]["status"] == "done"
    assert [s["status"] for s in stages.values()].count("done") == len(stages)
    assert tree_digest(run_dir / "variants" / "phi0") == killed["first_member_digest"]  # its files untouched
    previous = json.loads((run_dir / "state.json.previous").read_text())  # the recovery copy is a valid state
    assert set(previous["stages"]) <= set(stages)


@pytest.mark.slow
def test_run_produces_results_plots_and_both_report_pages(resumed_run, assert_every_number_names_its_split):
    run_dir = resumed_run[0]
    results = json.loads((run_dir / "results.json").read_text())
    search = json.loads((run_dir / "search" / "search.json").read_text())["config"]
    assert (search["proxy"]["schedule"], search["train_fraction"], search["seeds"]) == ("cosine", 0.5, 2)
    assert all(len(t["accuracy_seeds"]) == 2 for t in results["search"]["trials"])
    assert [v["name"] for v in results["variants"]] == ["phi0", "phi1"]
    assert len(results["search"]["trials"]) == 2
    for variant in results["variants"]:
        assert 0.0 <= variant["test_top1"] <= 1.0 and variant["parameters"] > 0 and variant["multiply_adds"] > 0
        assert 0.0 <= variant["validation_top1"] <= 1.0 and variant["test_examples"] == 360
    assert results["search"]["split"] == "validation"
    assert_every_number_names_its_split(results)
    from PIL import Image

    for plot in ("accuracy_vs_macs.png", "search_candidates.png", "search_history.png", "training_curves.png"):
        with Image.open(run_dir / plot) as image:
            assert image.format == "PNG" and image.size[0] > 100 and image.size[1] > 100
            assert len(set(image.convert("L").getdata())) > 10  # something is drawn
    assert (run_dir / "logs" / "phi0").is_dir()  # TensorBoard logs under one log dir


@pytest.mark.slow
def test_report_numbers_equal_the_results_json(resumed_run):
    run_dir = resumed_run[0]
    results = json.loads((run_dir / "results.json").read_text())
    markdown = (run_dir / "report.md").read_text()
    page = (run_dir / "report.html").read_text()
    family_table = markdown.split("## Family")[1].split("##")[0]
    rows = [line.strip("|").split("|") for line in family_table.splitlines() if line.startswith("| phi")]
    assert len(rows) == len(results["variants"])
    for cells, variant in zip(rows, results["variants"]):
        cells = [c.strip() for c in cells]
        assert cells[0] == variant["name"]
        assert int(cells[4].replace(",", "")) == variant["parameters"]
        assert float(cells[5].replace(",", "")) == pytest.approx(variant["multiply_adds"] / 1e6, abs=0.005)
        assert float(cells[6].split("%")[0]) == pytest.approx(100 * variant["test_top1"], abs=0.05)
        assert cells[6].split(" ")[0] in page and f"{variant['parameters']:,}" in page
    assert results["baseline"]["genotype"] in markdown


@pytest.mark.slow
def test_status_reports_every_stage(resumed_run, capsys):
    run_dir = resumed_run[0]
    assert cli.main(["status", str(run_dir)]) == 0
    out = capsys.readouterr().out
    for stage in ("search", "scaling", "train:phi0", "train:phi1", "report"):
        assert re.search(rf"^{re.escape(stage)}\s+done", out, re.MULTILINE), out


@pytest.mark.slow
def test_status_json_lists_every_stage_with_its_state(resumed_run, capsys):
    run_dir = resumed_run[0]
    assert cli.main(["status", str(run_dir), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    state = read_state(run_dir)
    stages = {row["stage"]: row for row in status["stages"]}
    assert set(stages) == set(state["stages"])
    for name in ("train:phi0", "train:phi1", "train:reference-phi0", "train:reference-phi1"):
        assert stages[name]["status"] == "done" and stages[name]["seconds"] == state["stages"][name]["seconds"]


@pytest.mark.slow
def test_finished_run_reruns_without_training(resumed_run):
    run_dir = resumed_run[0]
    before = read_state(run_dir)
    started = time.time()
    config = json.loads((run_dir / "config.json").read_text())  # the run's own: proxy file and seeds too
    results = run_family(config, str(run_dir), verbose=0)
    assert time.time() - started < 60
    after = read_state(run_dir)
    assert {k: v["attempts"] for k, v in after["stages"].items()} == {
        k: v["attempts"] for k, v in before["stages"].items()}
    assert len(results["variants"]) == 2


@pytest.mark.slow
@pytest.mark.parametrize("change,named", [
    ({"trainng": {"epochs": 1}}, "'trainng'"),
    ({"training": {"epochs": "ten"}}, "'training.epochs'"),
    ({"search": {"oracle": "annealing"}}, "'search.oracle'"),
    ({"search": {"target": -5}}, "'search.target'"),
    ({"scaling": {"family": "b9-b12"}}, "'scaling.family'"),
    ({"dataset": None}, "'dataset'"),
    ({"baseline": "efficientnet-b9"}, "'baseline'"),
    ({"training": {"recipe": {"optimiser": "sgd"}}}, "'training.recipe'"),
])
def test_invalid_config_fails_before_training_and_leaves_old_run_untouched(change, named, tmp_path, resumed_run):
    config = {**MINIATURE, **change}
    if config.get("dataset") is None:
        config.pop("dataset")
    with pytest.raises(UserError, match=re.escape(named)):
        FamilyConfig.from_dict(config)

    run_dir = resumed_run[0]
    digest = tree_digest(run_dir)
    config_path = tmp_path / "bad.yaml"
    config_path.write_text(yaml.safe_dump(config))
    done = subprocess.run(family_command(config_path, run_dir), env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert named in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert tree_digest(run_dir) == digest


@pytest.mark.slow
def test_a_different_config_does_not_overwrite_an_earlier_run(resumed_run):
    run_dir = resumed_run[0]
    digest = tree_digest(run_dir)
    with pytest.raises(UserError, match="different configuration"):
        run_family({**MINIATURE, "training": {"epochs": 5}}, str(run_dir), verbose=0)
    assert tree_digest(run_dir) == digest


def test_toml_config_and_flags(tmp_path):
    path = tmp_path / "family.toml"
    path.write_text('dataset = "digits"\n[search]\ntrials = 3\ntarget = 2e6\n[scaling]\nfamily = ["b0", "phi=1"]\n')
    config = FamilyConfig.load(str(path), {"training.epochs": 2})
    assert (config.search.trials, config.search.target, config.scaling.family, config.training.epochs) == (
        3, 2e6, "b0;phi=1", 2)
    with pytest.raises(UserError, match="does not parse"):
        (tmp_path / "broken.toml").write_text("dataset = ")
        FamilyConfig.load(str(tmp_path / "broken.toml"))
    with pytest.raises(UserError, match="no effscale family run"):
        run_status(str(tmp_path))


# -- the report: recommendation, search setup, reference family, intervals, links ----------------

class _Page(HTMLParser):
    """The report page as the tests read it: text by section, tables, links, images."""

    def __init__(self):
        super().__init__()
        self.sections, self.links, self.images, self.recommendation = {}, [], [], ""
        self._title, self._tag_stack, self._table, self._row, self._cell = "", [], None, None, None
        self.tables = {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self._tag_stack.append((tag, attrs))
        if tag == "a":
            self.links.append(attrs["href"])
        elif tag == "img":
            self.images.append(attrs["src"])
        elif tag == "table":
            self._table = []
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = ""

    def handle_endtag(self, tag):
        self._tag_stack.pop()
        if tag in ("td", "th"):
            self._row.append(self._cell.strip())
            self._cell = None
        elif tag == "tr":
            self._table.append(self._row)
        elif tag == "table":
            self.tables.setdefault(self._title, []).append(self._table)
            self._table = None

    def handle_data(self, data):
        tag, attrs = self._tag_stack[-1] if self._tag_stack else ("", {})
        if tag == "h2":
            self._title = data.strip()
        if attrs.get("id") == "recommendation" or (self._tag_stack and any(
                a.get("id") == "recommendation" for _, a in self._tag_stack)):
            self.recommendation += data
        if self._cell is not None:
            self._cell += data
        self.sections[self._title] = self.sections.get(self._title, "") + data


def _page(run_dir) -> _Page:
    page = _Page()
    page.feed((run_dir / "report.html").read_text())
    return page


def _wilson(accuracy: float, examples: int) -> tuple[float, float]:
    """scipy's Wilson score interval of ``accuracy`` over ``examples`` images."""
    from scipy.stats import binomtest

    interval = binomtest(round(accuracy * examples), examples).proportion_ci(0.95, method="wilson")
    return interval.low, interval.high


def _member_results(run_dir, folder: str) -> dict:
    return json.loads((run_dir / "variants" / folder / "results.json").read_text())


@pytest.mark.slow
def test_report_recommends_the_cheapest_member_within_noise_of_the_best(resumed_run):
    run_dir = resumed_run[0]
    members = {name: _member_results(run_dir, name) for name in ("phi0", "phi1")}
    intervals = {name: _wilson(m["validation_top1"], m["validation_examples"]) for name, m in members.items()}
    best = max(members, key=lambda n: members[n]["validation_top1"])
    tied = [n for n in members if intervals[n][0] <= intervals[best][1] and intervals[best][0] <= intervals[n][1]]
    expected = min(tied, key=lambda n: members[n]["multiply_adds"])
    page = _page(run_dir)
    assert page.recommendation.startswith(f"Recommendation: ship {expected} ")
    assert "cheapest member within noise of the best" in page.recommendation
    assert f"**Recommendation: ship `{expected}`" in (run_dir / "report.md").read_text()


@pytest.mark.slow
def test_report_says_what_was_searched_and_how_far_each_candidate_sat_from_the_target(resumed_run):
    run_dir = resumed_run[0]
    page = _page(run_dir)
    [setup] = page.tables["What was searched"]
    settings = dict(row for row in setup[1:])
    assert settings["oracle"] == "evolution" and settings["constraint"] == "soft"
    assert settings["target"] == "1M multiply-adds"
    assert "genotypes" in settings["search space"] and "1 epochs at 16 px, width 0.25" in settings["proxy task"]
    trials = read_state(run_dir)["stages"]["search"]["trials"]
    [candidates] = page.tables["Candidates against the target"]
    assert len(candidates) == 1 + len(trials)
    for row, trial in zip(candidates[1:], trials):
        ratio = trial["cost"] / MINIATURE["search"]["target"]
        assert row[4] == f"{ratio:.2f}x ({'over' if ratio > 1 else 'under'})"
        assert row[6] == trial["genotype"]
    assert re.search(r"candidates were (over|at or under) the 1M multiply-adds target|of 2 candidates were over",
                     page.sections["What was searched"])


@pytest.mark.slow
def test_reference_family_is_trained_exactly_like_the_searched_one(resumed_run):
    from effscale.model.zoo import load_genotype
    from effscale.model.scaling import scale_genotype

    run_dir = resumed_run[0]
    expected_genotype = scale_genotype(load_genotype("tiny"), MINIATURE["scaling"]["base"]).encode()
    for name in ("phi0", "phi1"):
        searched, reference = _member_results(run_dir, name), _member_results(run_dir, "reference-" + name)
        assert reference["genotype"] == expected_genotype != searched["genotype"]
        for key in ("recipe", "data", "variant", "epochs_done", "global_batch", "mixed_precision", "strategy"):
            assert reference[key] == searched[key], key
    page = _page(run_dir)
    [table] = page.tables["Reference family (not searched)"]
    assert [row[0] for row in table[1:]] == ["phi0", "phi1"]
    [comparison] = page.tables["Did the search help?"]
    assert [row[0] for row in comparison[1:]] == ["phi0", "phi1"]


@pytest.mark.slow
def test_family_tables_show_test_top1_with_its_interval_and_mark_the_pareto_members(resumed_run):
    run_dir = resumed_run[0]
    page = _page(run_dir)
    [table] = page.tables["Family"]
    header, rows = table[0], table[1:]
    column = header.index("test top-1 (95% interval)")
    members = {name: _member_results(run_dir, name) for name in ("phi0", "phi1")}
    for row in rows:
        member = members[row[0]]
        low, high = _wilson(member["test_top1"], member["test_examples"])
        assert row[column] == f"{100 * member['test_top1']:.1f}% ({100 * low:.1f}-{100 * high:.1f})"
    efficient = {n for n, m in members.items() if not any(
        o["multiply_adds"] <= m["multiply_adds"] and o["test_top1"] >= m["test_top1"] and o is not m
        and (o["multiply_adds"] < m["multiply_adds"] or o["test_top1"] > m["test_top1"]) for o in members.values())}
    pareto = header.index("Pareto-efficient")
    assert {row[0] for row in rows if row[pareto] == "yes"} == efficient


@pytest.mark.slow
def test_report_links_resolve_and_the_html_is_one_self_contained_file(resumed_run):
    import base64

    run_dir = resumed_run[0]
    page = _page(run_dir)
    for name in ("phi0", "phi1", "reference-phi0", "reference-phi1"):
        assert f"variants/{name}/model.keras" in page.links and f"logs/{name}" in page.links
    for link in page.links:
        assert (run_dir / link).exists(), link
    assert len(page.images) == 4
    for source in page.images:
        assert source.startswith("data:image/png;base64,")
        assert base64.b64decode(source.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    text = (run_dir / "report.html").read_text()
    assert "<script" not in text and "<link" not in text and "`" not in text  # code is <code>, not backticks


@pytest.mark.slow
def test_report_times_are_the_times_the_console_printed(resumed_run):
    run_dir = resumed_run[0]
    console = (run_dir.parent / "console.txt").read_text()
    printed = dict(re.findall(r"train (\S+) done in (\d+:\d\d)", console))
    assert "phi1" in printed and "reference-phi1" in printed, console[-2000:]
    page = _page(run_dir)
    for title, prefix in (("Family", ""), ("Reference family (not searched)", "reference-")):
        [table] = page.tables[title]
        column = table[0].index("training wall time")
        for row in table[1:]:
            if prefix + row[0] in printed:
                assert row[column] == printed[prefix + row[0]]


@pytest.mark.slow
def test_output_files_honour_the_umask(resumed_run):
    run_dir = resumed_run[0]
    for root, folders, files in os.walk(run_dir):
        for name in files:
            assert stat.S_IMODE(os.stat(os.path.join(root, name)).st_mode) == 0o644, os.path.join(root, name)
        for name in folders:
            assert stat.S_IMODE(os.stat(os.path.join(root, name)).st_mode) == 0o755, os.path.join(root, name)


# -- every search option from the family config ------------------------------------------------------

@pytest.mark.slow
def test_search_options_of_the_family_config_reach_the_search(tmp_path):
    """Limits, prescreen, open choices, choice values, stages, seeds and the training fraction,
    set in the config file's search section, are what the search ran with (its search.json);
    ``workers`` trains the trials in that many local worker processes, and a rerun with another
    worker count resumes the same run."""
    config = {"dataset": "digits", "baseline": "tiny", "reference_family": False,
              "search": {"oracle": "random", "trials": 2, "epochs": 1, "resolution": 8, "width": 0.25,
                         "max_macs": 5e6, "prescreen": "params:3", "open_choices": ["kernel", "se"],
                         "options": {"kernel": [3, 5]}, "stages": [2, 3], "seeds": 2, "train_fraction": 0.5,
                         "workers": 2},
              "scaling": {"family": "phi=0", "base": "w=0.25,d=0.5,r=8"},
              "training": {"epochs": 1, "batch_size": 64}}
    path = tmp_path / "family.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {k: v for k, v in ENV.items() if not k.startswith("KERASTUNER_")}
    done = subprocess.run(family_command(path, tmp_path / "run")[:-1], env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 worker process(es)" in done.stdout, done.stdout[-3000:]
    path.write_text(yaml.safe_dump({**config, "search": {**config["search"], "workers": 0}}))
    again = subprocess.run(family_command(path, tmp_path / "run"), env=env, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0 and "different configuration" not in again.stderr, again.stderr[-3000:]
    saved = json.loads((tmp_path / "run" / "search" / "search.json").read_text())["config"]
    assert saved["limits"]["max_macs"] == 5e6 and saved["prescreen"] == "params:3"
    assert saved["space"]["open"] == ["kernel", "se"] and saved["space"]["stages"] == [2, 3]
    assert saved["space"]["options"]["kernel"] == [3, 5]
    assert (saved["seeds"], saved["train_fraction"], saved["oracle"], saved["resolution"]) == (2, 0.5, "random", 8)
    with open(tmp_path / "run" / "search" / "trials.csv") as handle:
        import csv

        rows = list(csv.DictReader(handle))
    completed = [r for r in rows if r["status"] == "COMPLETED"]
    assert len(rows) == 2 and completed and all(len(r["accuracy_seeds"].split(";")) == 2 for r in completed)
    prescreen = json.loads((tmp_path / "run" / "search" / "prescreen.json").read_text())
    assert prescreen  # each trial's candidates were scored by parameter count


@pytest.mark.parametrize("search,named", [
    ({"max_macs": -5}, "config key 'search.max_macs'"),
    ({"stages": [7]}, "config key 'search.stages'"),
    ({"open_chioces": ["kernel"]}, "config key 'search.open_chioces' is unknown"),
    ({"workers": -1}, "config key 'search.workers': workers must be an integer from 0 to 64"),
])
def test_a_bad_search_key_in_the_family_file_is_one_line_and_exit_2(search, named, tmp_path):
    path = tmp_path / "family.yaml"
    path.write_text(yaml.safe_dump({**MINIATURE, "search": {**MINIATURE["search"], **search}}))
    done = subprocess.run(family_command(path, tmp_path / "run"), env=ENV, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2
    assert named in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "run").exists()
