import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# Under pytest-xdist every worker's TensorFlow (and every process a test starts, which inherits it)
# gets its share of the cores as intra-op threads: two workers of two threads each oversubscribe a
# 2-core machine, and tiny models then wait on each other's spinning thread pools (measured: four
# in-process test files 140 s -> 107 s of wall time with -n 2). A developer's own setting wins.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS >= 2:
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(max(1, (os.cpu_count() or 1) // _WORKERS)))

import numbers  # noqa: E402

import pytest  # noqa: E402

METRIC_WORDS = ("top1", "top5", "loss", "accuracy")
SPLIT_PREFIXES = ("train_", "validation_", "test_")
NOT_RESULTS = ("config", "reference_points")  # the user's own settings and published numbers


def _check_split_names(value, path: str, labelled: bool) -> None:
    if isinstance(value, dict):
        labelled = labelled or "split" in value  # a block that says which split its numbers are on
        for key, item in value.items():
            if key in NOT_RESULTS:
                continue
            where = f"{path}.{key}"
            if isinstance(item, numbers.Number) and not isinstance(item, bool) and not labelled \
                    and any(word in key for word in METRIC_WORDS):
                assert key.startswith(SPLIT_PREFIXES), f"{where} does not name its split"
            _check_split_names(item, where, labelled or f"{key}_" in SPLIT_PREFIXES)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_split_names(item, f"{path}[{index}]", labelled)


@pytest.fixture
def assert_every_number_names_its_split():
    """Every accuracy or loss in a results record is named by its split (``test_top1``,
    ``validation_loss``, ``train_accuracy``) or sits in a block that says its ``split``."""
    return lambda record: _check_split_names(record, "record", False)


@pytest.fixture(scope="session")
def load_benchmark():
    """``load_benchmark("tabular/generate.py")``: a script under benchmarks/ imported as a module."""
    import importlib.util

    def load(relative: str):
        path = os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks", relative)
        spec = importlib.util.spec_from_file_location(relative.replace("/", "_").removesuffix(".py"), path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
