"""Absurd numbers anywhere a user can give one: exit 2, one line on stderr, nothing written.

Property-based (Hypothesis) over every numeric flag of train, evaluate, search, family, proxy,
finetune, export, describe and build, every numeric key of a family config file, the size
limits' environment variables and TF_CONFIG. Values: below or above the flag's range (huge,
negative), 5000-digit integers (beyond Python's int-conversion limit), inf, nan, 1e400,
non-ASCII digits ('²', '٣'), '1_000', hex, empty and multi-line text. The CLI runs in-process
(``effscale.cli.main``), so each example costs milliseconds: every check named here happens
before TensorFlow is imported and before any file or folder is created.
"""

import contextlib
import io
import os
import tempfile

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from effscale import cli
from effscale.common.checks import BATCH_MAX, COUNT_MAX, EPOCHS_MAX, SEED_MAX

FAST = settings(max_examples=40, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

NOT_NUMBERS = ["inf", "-inf", "nan", "NaN", "Infinity", "1e400", "-1e400", "²", "٣", "１２", "1_000", "0x10",
               "", " ", "abc", "1\n2", "9" * 5000, "-" + "9" * 5000, "1" + "0" * 400, "1e", "--", "1.5.2"]
NOT_INTEGERS = NOT_NUMBERS + ["1.5", "2e3", "1e0"]


def outside(low, high, integer=True):
    """Values outside ``low..high`` (None: unbounded), as text, plus everything that is not a number."""
    options = [st.sampled_from(NOT_INTEGERS if integer else NOT_NUMBERS)]
    if low is not None:
        options.append(st.integers(max_value=low - 1, min_value=low - 10**40).map(str))
    if high is not None:
        options.append(st.integers(min_value=high + 1, max_value=high + 10**40).map(str))
        options.append(st.integers(min_value=31, max_value=6000).map(lambda n: "9" * n))
    return st.one_of(*options)


TRAIN = ["train", "tiny", "--out", "OUT"]
SEARCH = ["search", "--baseline", "tiny", "--project-dir", "OUT"]
FAMILY = ["family", "--dataset", "digits", "--out", "OUT"]
PROXY = ["proxy", "--project-dir", "OUT"]
FINETUNE = ["finetune", "tiny", "--dataset", "digits", "--out", "OUT"]

# (command line before the flag, flag, low, high, integer); the output location is OUT.
FLAGS = [
    (TRAIN, "--seed", 0, SEED_MAX, True),
    (TRAIN, "--epochs", 1, EPOCHS_MAX, True),
    (TRAIN, "--batch-size", 1, BATCH_MAX, True),
    (TRAIN, "--per-replica-batch", 1, BATCH_MAX, True),
    (TRAIN, "--cpu-replicas", 1, 4096, True),
    (TRAIN, "--latency-runs", 0, COUNT_MAX, True),
    (TRAIN, "--learning-rate", 1, None, False),   # 0 and below refused
    (TRAIN, "--label-smoothing", 0, 1, False),
    (TRAIN, "--validation-fraction", 0, 1, False),
    (TRAIN, "--train-fraction", 1, 1, False),
    (["evaluate", "OUT"], "--batch-size", 1, BATCH_MAX, True),
    (["evaluate", "OUT"], "--throughput-steps", 0, COUNT_MAX, True),
    (SEARCH, "--seed", 0, SEED_MAX, True),
    (SEARCH, "--trials", 1, COUNT_MAX, True),
    (SEARCH, "--epochs", 1, EPOCHS_MAX, True),
    (SEARCH, "--resolution", 8, 1024, True),
    (SEARCH, "--seeds", 1, 1000, True),
    (SEARCH, "--top-k", 1, COUNT_MAX, True),
    (SEARCH, "--reevaluate-seeds", 0, 1000, True),
    (SEARCH, "--population", 2, COUNT_MAX, True),
    (SEARCH, "--tournament", 1, COUNT_MAX, True),
    (SEARCH, "--width", 1, None, False),
    (SEARCH, "--max-macs", 1, None, False),
    (SEARCH, "--worker-timeout", 1, None, False),
    (SEARCH, "--train-fraction", 1, 1, False),
    (FAMILY, "--seed", 0, SEED_MAX, True),
    (FAMILY, "--batch-size", 1, BATCH_MAX, True),
    (FAMILY, "--trials", 1, COUNT_MAX, True),
    (FAMILY, "--train-epochs", 1, EPOCHS_MAX, True),
    (FAMILY, "--proxy-epochs", 1, EPOCHS_MAX, True),
    (FAMILY, "--target", 1, None, False),
    (PROXY, "--seed", 0, SEED_MAX, True),
    (PROXY, "--architectures", 1, COUNT_MAX, True),
    (PROXY, "--batch-size", 1, BATCH_MAX, True),
    (FINETUNE, "--seed", 0, SEED_MAX, True),
    (FINETUNE, "--batch-size", 1, BATCH_MAX, True),
    (FINETUNE, "--resolution", 8, 4096, True),
    (["export", "OUT", "--format", "tflite"], "--samples", 1, COUNT_MAX, True),
    (["describe", "tiny"], "--classes", 1, 1_000_000, True),
    (["build", "tiny", "--out", "OUT/m.keras"], "--classes", 1, 1_000_000, True),
]

# Flags whose value is a small spec holding numbers: {} is replaced by an absurd value.
BAD_COUNTS = st.one_of(st.sampled_from(NOT_INTEGERS + ["-1", "0"]),
                       st.integers(min_value=10**4 + 1, max_value=10**40).map(str))
BAD_NUMBERS = st.one_of(st.sampled_from(NOT_NUMBERS + ["-1", "0"]),
                        st.integers(min_value=10**5, max_value=10**40).map(str))
SPECS = [
    (SEARCH, "--prescreen", "macs:{}", BAD_COUNTS),
    (SEARCH, "--stages", "2,{}", BAD_COUNTS),
    (SEARCH, "--target", "{}M",
     st.sampled_from(NOT_NUMBERS + ["-1", "0"])),
    (TRAIN + ["--epochs", "4"], "--progressive", "stages={}", BAD_COUNTS),
    (TRAIN + ["--epochs", "4"], "--progressive", "stages=2,resolution=16-{}", BAD_NUMBERS),
    (TRAIN + ["--epochs", "4"], "--progressive", "stages=2,dropout=0.1-{}", BAD_NUMBERS),
    (PROXY, "--shard", "{}/2", st.one_of(st.sampled_from(NOT_INTEGERS + ["-1", "2", "3"]),
                                         st.integers(min_value=2, max_value=10**40).map(str))),
    (PROXY, "--shard", "0/{}", st.sampled_from(NOT_INTEGERS + ["-1", "0"])),
    (PROXY, "--setting", "epochs={}", BAD_COUNTS),
]

# Family config keys: (dotted key, low, high, integer).
CONFIG_KEYS = [
    ("seed", 0, SEED_MAX, True),
    ("validation_fraction", 1, 1, False),
    ("training.batch_size", 1, BATCH_MAX, True),
    ("training.epochs", 1, EPOCHS_MAX, True),
    ("search.trials", 1, COUNT_MAX, True),
    ("search.epochs", 1, EPOCHS_MAX, True),
    ("search.seed", 0, SEED_MAX, True),
    ("search.seeds", 1, 1000, True),
    ("search.target", 1, None, False),
    ("search.width", 1, None, False),
    ("search.oracle_options.population_size", 2, COUNT_MAX, True),
    ("search.oracle_options.sample_size", 1, COUNT_MAX, True),
    ("coefficients.max_trials", 1, COUNT_MAX, True),
    ("coefficients.epochs", 1, EPOCHS_MAX, True),
]


def run_cli(argv):
    """(exit code, stderr lines) of the in-process CLI; a traceback fails the test by propagating.
    Nothing here may get as far as training: the SIGALRM stops an accepted value within seconds."""
    import signal

    class TooSlow(BaseException):  # not an Exception: Keras Tuner catches those per trial
        pass

    def too_slow(*_):
        raise TooSlow(f"accepted and ran: {[a[:60] for a in argv]}")

    err, out = io.StringIO(), io.StringIO()
    previous = signal.signal(signal.SIGALRM, too_slow)
    signal.alarm(20)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                code = cli.main(argv)
            except SystemExit as stop:
                code = stop.code
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    return code, err.getvalue().splitlines()


def assert_refused(argv, folder):
    """Exit 2, exactly one line on stderr starting with 'effscale: error:', nothing created in ``folder``."""
    code, lines = run_cli(argv)
    shown = [a if len(a) < 80 else a[:60] + f"...({len(a)} chars)" for a in argv]
    assert code == 2, (shown, code, lines[-3:])
    assert len(lines) == 1 and lines[0].startswith("effscale: error: "), (shown, lines[:3])
    assert len(lines[0]) < 400, (shown, lines[0][:500])
    assert os.listdir(folder) == [], (shown, os.listdir(folder))


def _argv(prefix, flag, value, folder):
    out = os.path.join(folder, "out")
    return [a.replace("OUT", out) for a in prefix] + ([flag, value] if flag else [])


@FAST
@given(data=st.data(), index=st.integers(0, len(FLAGS) - 1))
def test_every_numeric_flag_refuses_absurd_values(data, index):
    prefix, flag, low, high, integer = FLAGS[index]
    value = data.draw(outside(low, high, integer))
    folder = tempfile.mkdtemp()
    assert_refused(_argv(prefix, flag, value, folder), folder)


@FAST
@given(data=st.data(), index=st.integers(0, len(SPECS) - 1))
def test_numbers_inside_specs_refuse_absurd_values(data, index):
    prefix, flag, template, values = SPECS[index]
    value = data.draw(values)
    folder = tempfile.mkdtemp()
    assert_refused(_argv(prefix, flag, template.format(value), folder), folder)


@FAST
@given(flag=st.sampled_from(["--limit-params", "--limit-blocks", "--limit-macs"]), value=outside(1, None, False))
def test_size_limit_flags_refuse_absurd_values(flag, value):
    folder = tempfile.mkdtemp()
    assert_refused([flag, value, "train", "tiny", "--out", os.path.join(folder, "out")], folder)


def _config_value(low, high, integer):
    """Absurd values as a YAML file would hold them: numbers of every size, inf, nan, text."""
    values = [st.sampled_from([float("inf"), float("-inf"), float("nan"), "abc", "²", "٣", "1_000", "", True,
                               [1], {"a": 1}, "9" * 5000, 10**400, -(10**400)])]
    if low is not None:
        values.append(st.integers(max_value=low - 1, min_value=low - 10**40))
    if high is not None:
        values.append(st.integers(min_value=high + 1, max_value=high + 10**40))
    if integer:
        values.append(st.sampled_from([1.5, "8", "1e3"]))
    return st.one_of(*values)


@FAST
@given(data=st.data(), index=st.integers(0, len(CONFIG_KEYS) - 1), extension=st.sampled_from([".yaml", ".json"]))
def test_every_numeric_config_key_refuses_absurd_values(data, index, extension):
    import json

    key, low, high, integer = CONFIG_KEYS[index]
    value = data.draw(_config_value(low, high, integer))
    config = {"dataset": "digits", "baseline": "tiny"}
    section = config
    *parents, last = key.split(".")
    for parent in parents:
        section = section.setdefault(parent, {})
    section[last] = value
    folder = tempfile.mkdtemp()
    config_dir = tempfile.mkdtemp()
    path = os.path.join(config_dir, "family" + extension)
    with open(path, "w") as handle:
        handle.write(json.dumps(config) if extension == ".json" else yaml.safe_dump(config))
    assert_refused(["family", "--config", path, "--out", os.path.join(folder, "out")], folder)


@FAST
@given(variable=st.sampled_from(["EFFSCALE_MAX_PARAMS", "EFFSCALE_MAX_BLOCKS", "EFFSCALE_MAX_MULTIPLY_ADDS"]),
       value=st.sampled_from(["abc", "inf", "-inf", "nan", "0", "-5", "1e400", "²", "٣", "9" * 5000, "1_000",
                              "1e9 2"]),
       command=st.sampled_from([TRAIN, SEARCH, FAMILY, ["describe", "tiny"]]))
def test_size_limit_variables_are_checked_at_once(variable, value, command):
    folder = tempfile.mkdtemp()
    saved = os.environ.get(variable)
    os.environ[variable] = value
    try:
        assert_refused(_argv(command, None, None, folder), folder)
        code, lines = run_cli(_argv(command, None, None, folder))
        assert variable in lines[0]
    finally:
        if saved is None:
            del os.environ[variable]
        else:
            os.environ[variable] = saved


TF_CONFIGS = [
    "not json", "[1, 2]", '"text"', '{"cluster": "abc"}', '{"cluster": {"worker": 3}}',
    '{"cluster": {"worker": [1, 2]}}', '{"cluster": {"worker": ["a:1", "b:2"]}, "task": "worker"}',
    '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": "one"}}',
    '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": "1"}}',
    '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}',
    '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": -1}}',
    '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1.5}}',
    '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": true}}',
    '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1e400}}',
    '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "chief", "index": 0}}',
    '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": 7, "index": 0}}',
    '{"cluster": {"worker": ["a:x", "b:2"]}, "task": {"type": "worker", "index": 0}}',
    '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": ' + "9" * 5000 + "}}",
]


@FAST
@given(text=st.sampled_from(TF_CONFIGS),
       command=st.sampled_from([TRAIN, FAMILY, SEARCH]))
def test_malformed_tf_config_is_one_line(text, command):
    folder = tempfile.mkdtemp()
    saved = os.environ.get("TF_CONFIG")
    os.environ["TF_CONFIG"] = text
    try:
        code, lines = run_cli(_argv(command, None, None, folder))
        assert code == 2 and len(lines) == 1 and "TF_CONFIG" in lines[0], (text[:80], code, lines[-3:])
        assert os.listdir(folder) == []
    finally:
        if saved is None:
            del os.environ["TF_CONFIG"]
        else:
            os.environ["TF_CONFIG"] = saved


def test_a_well_formed_tf_config_is_accepted():
    from effscale.training.strategy import cluster_size, read_tf_config

    text = '{"cluster": {"chief": ["a:1"], "worker": ["b:2", "c:3"]}, "task": {"type": "worker", "index": 1}}'
    assert cluster_size(read_tf_config(text)) == (3, "worker", 1)


@FAST
@given(text=st.sampled_from(["mb_r1_k3_" * 12000, "stem32-" + "x" * 100_000, "tiny\nsecond line"]),
       where=st.sampled_from(["genotype", "variant", "family"]))
def test_a_huge_or_multi_line_value_is_echoed_on_one_short_line(text, where):
    argv = {"genotype": ["describe", text], "variant": ["describe", "tiny", "--variant", "w=" + text],
            "family": ["describe", "tiny", "--family", text]}[where]
    code, lines = run_cli(argv)
    assert code == 2 and len(lines) == 1 and len(lines[0]) < 700, (code, len(lines), len(lines[0]) if lines else 0)


def test_a_family_batch_larger_than_the_dataset_is_refused_before_its_folder_exists(tmp_path, capsys):
    out = tmp_path / "run"
    code = cli.main(["family", "--dataset", "digits", "--no-search", "--family", "phi=0", "--train-epochs", "1",
                     "--batch-size", "100000", "--out", str(out)])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "batch size 100000 is larger than" in lines[0], lines
    assert not out.exists()  # it used to write config.json, state.json and results.json first
