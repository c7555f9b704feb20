"""Property-based fuzzing (Hypothesis) of the command line's parsers.

Whatever the text, a parser either accepts it or raises UserError (the CLI's exit 2 and one
line); any other exception is a bug. Genotype strings, variant and family specs go through
``effscale describe`` in-process (what the command runs, without a process start per
example); family config files through ``FamilyConfig.load`` (what ``effscale family`` runs
before anything else); search targets and stage lists through their parsers; and a handful of
examples through the real ``effscale`` process.
"""

import math
import os
import re
import string
import subprocess
import sys
import tempfile

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from effscale import cli
from effscale.cli.search import parse_stages
from effscale.family.config import FamilyConfig
from effscale.common.errors import UserError
from effscale.search import parse_target

FAST = settings(max_examples=100, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

numbers = st.one_of(st.integers(-5, 10**12).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
                    st.sampled_from(["", "0", "1e9", "1e400", "-0", "0x10", "1_000", "٣", "nan", "inf"]))
header_tokens = st.one_of(st.builds(lambda p, n: p + n, st.sampled_from(["stem", "head", "res"]), numbers),
                          st.sampled_from(["relu", "swish", "hswish", "mish", ""]))
stage_tokens = st.one_of(st.builds(lambda p, n: p + n, st.sampled_from(["r", "k", "s", "e", "c", "se"]), numbers),
                         st.sampled_from(["mb", "fmb", "ds", "noskip", "relu6", "gelu", "xx", ""]))
sections = st.lists(stage_tokens, min_size=0, max_size=8).map("_".join)
genotypes = st.one_of(
    st.builds(lambda h, s: "-".join(["_".join(h)] + s), st.lists(header_tokens, max_size=5),
              st.lists(sections, max_size=4)),
    st.text(alphabet=string.ascii_lowercase + string.digits + "_-.= ", max_size=60),
    st.text(max_size=30))
variants = st.one_of(
    st.sampled_from(["b0", "b7", "l2", "b9", "phi=", "macs=", "params=", ""]),
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(["phi", "macs", "params"]), numbers),
    st.builds(lambda w, d, r, extra: f"w={w},d={d},r={r}{extra}", numbers, numbers, numbers,
              st.sampled_from(["", ",dropout=0.1", ",dropout=2", ",w=1", ",x=1"])),
    st.text(max_size=25))
families = st.one_of(
    st.builds(lambda a, b: f"b{a}-b{b}", st.integers(-2, 12), st.integers(-2, 12)),
    st.builds(lambda a, b, c: f"phi={a}..{b}{c}", numbers, numbers, st.sampled_from(["", ":0.5", ":0", ":-1", ":x"])),
    st.lists(variants, max_size=4).map(",".join),
    st.lists(variants, max_size=4).map(";".join))


def run_cli(argv, capsys) -> int:
    """Exit code of the in-process CLI; a traceback fails the test by propagating."""
    try:
        code = cli.main(argv)
    except SystemExit as exit_:  # argparse's own usage errors
        code = exit_.code
    captured = capsys.readouterr()
    err = captured.err
    assert code in (0, 2), (argv, err)
    if code == 2:
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, (argv, err)
        assert err.startswith(("effscale: error:", "usage:", "effscale")), (argv, err)
    return code if code == 2 or argv[0] != "describe" else _described(argv, captured.out)


# "parameters 329,517 (...)" for one model; a table row "... 198,529  0.002 G" per family member.
PARAMETERS = re.compile(r"^parameters ([0-9,]+) |([0-9][0-9,]*)\s+[0-9.]+ G$", re.MULTILINE)


def _described(argv, out: str) -> int:
    """An accepted ``describe`` printed a model: a genotype line and a positive parameter count."""
    assert out.startswith("genotype "), (argv, out)
    counts = [int((match.group(1) or match.group(2)).replace(",", "")) for match in PARAMETERS.finditer(out)]
    assert counts and all(count > 0 for count in counts), (argv, out)
    return 0


@FAST
@given(genotypes)
def test_genotype_strings(capsys, text):
    run_cli(["describe", text, "--classes", "10"], capsys)


@FAST
@given(variants)
def test_variant_specs(capsys, spec):
    run_cli(["describe", "tiny", "--variant", spec], capsys)


@FAST
@given(families)
def test_family_specs(capsys, spec):
    run_cli(["describe", "tiny", "--family", spec], capsys)


config_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-10, 10**10), st.floats(allow_nan=True), st.text(max_size=12),
              variants, genotypes),
    lambda children: st.one_of(st.lists(children, max_size=3),
                               st.dictionaries(st.text(max_size=8), children, max_size=3)),
    max_leaves=8)
config_keys = st.sampled_from(["dataset", "baseline", "search", "scaling", "training", "seed", "coefficients",
                               "data_dir", "validation_fraction", "reference_points", "trainng"])
section_keys = st.sampled_from(["oracle", "cost", "target", "trials", "epochs", "family", "base", "batch_size",
                                "strategy", "recipe", "enabled", "resolution", "width", "constraint"])
configs = st.dictionaries(config_keys, st.one_of(config_values, st.dictionaries(section_keys, config_values,
                                                                                   max_size=4)), max_size=6)


@FAST
@given(configs, st.sampled_from(["yaml", "toml", "garbage"]))
def test_family_config_files(config, form):
    folder = tempfile.mkdtemp()
    path = os.path.join(folder, "family.toml" if form == "toml" else "family.yaml")
    if form == "yaml":
        text = yaml.safe_dump(config)
    elif form == "toml":
        text = "\n".join(f"{key} = {value!r}" for key, value in config.items())
    else:
        text = repr(config)
    with open(path, "w") as handle:
        handle.write(text)
    try:
        loaded = FamilyConfig.load(path)
    except UserError as error:
        message = str(error)
        assert message and "\n" not in message and "Traceback" not in message, message
        return
    # Accepted: only a dictionary of known keys can be, and the loaded values are usable as read.
    assert form != "garbage" or isinstance(config, dict)
    assert isinstance(loaded.dataset, str) and loaded.dataset
    assert int(loaded.search.trials) >= 1


@FAST
@given(st.one_of(numbers, st.builds(lambda n, u: n + u, numbers, st.sampled_from(["k", "M", "G", "ms", "us", "x"])),
                 st.text(max_size=12)))
def test_search_targets(text):
    try:
        target = parse_target(text)
    except UserError as error:
        assert "\n" not in str(error), str(error)
        return
    assert math.isfinite(target) and target > 0, (text, target)


@FAST
@given(st.one_of(st.lists(st.one_of(st.integers(-3, 40).map(str), st.text(max_size=3)), max_size=5).map(",".join),
                 st.text(max_size=12)))
def test_stage_lists(text):
    try:
        stages = parse_stages(text)
    except UserError:
        return
    assert stages and all(isinstance(n, int) and n >= 0 for n in stages)


@settings(max_examples=4, deadline=None, database=None)
@given(genotypes)
def test_the_real_command_exits_0_or_2_without_a_traceback(text):
    text = text.replace("\x00", "")  # no operating system passes a NUL byte in an argument
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-m", "effscale.cli", "describe", text], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode in (0, 2) and "Traceback" not in done.stderr, done.stderr


def test_stages_option_of_the_search_command(tmp_path, capsys):
    code = run_cli(["search", "--baseline", "tiny", "--stages", "2,x", "--project-dir", str(tmp_path / "p")], capsys)
    assert code == 2 and not (tmp_path / "p").exists()


@pytest.mark.parametrize("argv", [["train", "tiny", "--out", "x", "--cpu-replicas", "0"],
                                  ["--limit-params", "-1", "zoo"], ["--limit-macs", "nan", "zoo"]])
def test_numeric_options_are_checked_by_argparse(argv, capsys):
    assert run_cli(argv, capsys) == 2


@FAST
@given(st.dictionaries(st.sampled_from(sorted(FamilyConfig.__dataclass_fields__["search"].default_factory().keys())),
                       config_values, max_size=4))
def test_every_search_key_with_any_value_is_a_config_or_one_user_error(section):
    try:
        FamilyConfig.from_dict({"dataset": "digits", "search": section})
    except UserError as error:
        assert "\n" not in str(error) and str(error).startswith("config key 'search"), str(error)
