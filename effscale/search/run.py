"""The entry point of a search: :func:`run_search` validates its input, then runs the oracle's
trials through the tuner (or serves them as the distributed chief) and writes the records."""

from __future__ import annotations

import os
import sys
import time

from effscale.errors import UserError
from effscale.genotype import Genotype
from effscale.io import read_json, write_json
from effscale.search.config import SearchConfig
from effscale.search.distributed import role as process_role, serve_chief
from effscale.search.objectives import Limits, Reward, pareto_front
from effscale.search.proxy import ProxySettings
from effscale.search.records import (TUNER_FOLDER, SearchResult, best_record, load_trials, trial_records,
                                     write_outputs, write_prescreen)
from effscale.search.registry import make_oracle
from effscale.search.space import SearchSpace
from effscale.search.trial import TrialRunner
from effscale.search.tuner import make_tuner_class
from effscale.search.zero_cost import make_prescreen



def check_project_dir(project_dir) -> str:
    if not isinstance(project_dir, (str, os.PathLike)) or not str(project_dir).strip():
        raise UserError("a project directory is required")
    path = os.path.abspath(os.fspath(project_dir))
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise UserError(f"project dir {project_dir!r} exists and is not a directory")
        if not os.access(path, os.W_OK | os.X_OK):
            raise UserError(f"project dir {project_dir!r} is not writable")
        return path
    parent = path
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"project dir {project_dir!r} cannot be created: {parent!r} is not a writable directory")
    return path


# -- the entry point ---------------------------------------------------------------------------------
def run_search(config: "SearchConfig | str | None" = None, project_dir: str = "effscale-search", *,
               verbose: int = 1, stream=None, overwrite: bool = False, worker_timeout: float = 300.0,
               repair: bool = False, **options) -> SearchResult:
    """Run (or resume) the search ``config`` in ``project_dir`` and return a :class:`SearchResult`.

    ``config`` is a :class:`SearchConfig`; or, as a shorthand, a baseline genotype with the
    keyword arguments of :meth:`SearchConfig.create` in ``options`` (``run_search("tiny",
    oracle="random", trials=4, project_dir="p")``). The rest are runtime options: ``verbose``,
    ``stream`` (progress lines, default stdout), ``overwrite`` (start over instead of resuming)
    ``worker_timeout`` (distributed: a silent worker's trial is ended FAILED after it) and
    ``repair`` (rebuild a damaged or missing ``search.json`` from the config and the trials on
    disk; none is lost).
    All input is validated before the project dir is touched; bad input raises UserError.
    """
    stream = stream or sys.stdout
    role = process_role()
    if not (isinstance(worker_timeout, (int, float)) and worker_timeout > 0):
        raise UserError(f"worker_timeout must be positive, got {worker_timeout!r}")
    if not isinstance(config, SearchConfig):
        config = SearchConfig.create(options.pop("baseline", "tiny") if config is None else config, **options)
    elif options:
        raise UserError(f"run_search: give a SearchConfig or options, not both ({', '.join(sorted(options))})")
    space = SearchSpace.from_dict(config.space)
    reward, limits = Reward.from_dict(config.reward), Limits.from_dict(config.limits)
    settings = ProxySettings.from_dict(config.proxy)
    oracle, cost, trials, seed, prescreen = config.oracle, reward.cost, config.trials, config.seed, config.prescreen
    if oracle == "differentiable":
        from effscale.search.differentiable import check_supported

        check_supported(space, cost, distributed=role is not None)
    path = check_project_dir(project_dir)
    config_path = os.path.join(path, "search.json")
    damaged = _damaged_project(path, config_path) if not overwrite and role != "worker" else None
    if damaged and not repair:
        raise UserError(damaged + "; rerun the same command with --repair to rebuild it from the trials, "
                        "which are kept")
    if os.path.exists(config_path) and not overwrite and role != "worker" and not damaged:
        saved = read_json(config_path).get("config", {})
        key = config.mismatch(saved)
        if key:
            raise UserError(f"project dir {project_dir!r} holds a different search ({key} differs); "
                            "use a new project dir or overwrite")
    elif not os.path.exists(config_path) and os.path.isdir(path) and os.listdir(path) and role != "worker" \
            and not damaged:
        raise UserError(f"project dir {project_dir!r} is not empty and is not an effscale search project")
    if os.path.isdir(str(config.dataset)):  # every image decodes (or is skipped on request) before any trial
        from effscale.preflight import check_dataset

        check_dataset(str(config.dataset))

    # -- from here on the project dir is written --------------------------------------------------
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if overwrite and role != "worker":
        _clear_project(path)
    os.makedirs(path, exist_ok=True)
    if role != "worker":
        summary = read_json(config_path) if os.path.exists(config_path) and not damaged else {}
        summary["config"] = config.to_dict()
        write_json(config_path, summary)
        if damaged:
            kept = trial_records(load_trials(path), space)
            write_outputs(path, kept, config)
            if verbose:
                print(f"repaired {config_path} from this command and the {len(kept)} trial(s) on disk",
                      file=stream, flush=True)
    runner = TrialRunner(space, reward, limits, settings, config.dataset, config.resolution, config.width, config.depth,
                         os.path.join(path, "latency"), config.latency, heartbeat_s=max(0.5, min(10.0, worker_timeout / 4)))
    screen = make_prescreen(prescreen, space, runner.variant, lambda: runner.data, settings.seed)
    keras_oracle = make_oracle(oracle, trials, space.hyperparameters(), seed=seed, epochs=settings.epochs,
                               prescreen=screen, **config.oracle_options)
    if screen:
        from effscale.search.oracles.prescreen import proxy_score_of

        runner.extra_metrics = lambda values: proxy_score_of(keras_oracle, values)
    keras_oracle.verbose = 0
    if oracle == "differentiable":
        from effscale.search.differentiable import attach

        attach(keras_oracle, space, runner, reward, os.path.join(path, "supernet"), seed, verbose, stream)
    started = time.monotonic()

    def say(text: str):
        if verbose:
            print(text, file=stream, flush=True)

    def progress(trial, seconds=None, metrics=None):
        records = trial_records([keras_oracle.trials[trial.trial_id]] if role != "worker" else [trial], space)
        row = records[0]
        if role == "worker" and metrics:
            row.update({k: metrics.get(k) for k in ("reward", "accuracy", "cost")})
        if role != "worker":
            all_records = trial_records(keras_oracle.trials.values(), space)
            summary = write_outputs(path, all_records, config)
            write_prescreen(path, keras_oracle, prescreen)
            best = summary["best"]
        else:
            best = None
        say(_progress_line(row, trials, reward, best, seconds if seconds is not None else time.monotonic() - started))

    tuner_class = make_tuner_class()
    tuner = tuner_class(keras_oracle, runner, directory=path, project_name=TUNER_FOLDER,
                        progress=progress if role != "chief" else None)
    if role != "worker":
        done = sum(1 for t in keras_oracle.trials.values() if t.status in ("COMPLETED", "FAILED"))
        if done:
            say(f"resuming {path}: {done} finished trial(s) kept")
        for message in getattr(keras_oracle, "repaired", []) or []:
            say(f"repaired: {message}")
    if role == "chief":
        tuner.save()
        say(f"chief serving the {oracle} oracle on {os.environ['KERASTUNER_ORACLE_IP']}:"
            f"{os.environ['KERASTUNER_ORACLE_PORT']}")
        serve_chief(keras_oracle, worker_timeout, on_trial_end=lambda t: progress(t, None))
    else:
        tuner.search()
    if role == "worker":
        records = trial_records(load_trials(path), space)
    else:
        records = trial_records(keras_oracle.trials.values(), space)
        write_outputs(path, records, config)
        write_prescreen(path, keras_oracle, prescreen)
    best = best_record(records)
    done = [r for r in records if r["status"] == "COMPLETED"]
    result = SearchResult(Genotype.parse(best["genotype"]) if best else None, best, records, pareto_front(done),
                          path, config.to_dict())
    if best:
        say(f"best: trial {best['trial_id']} reward {best['reward']:.4f} accuracy {best['accuracy']:.4f} "
            f"{cost} {_fmt_cost(best['cost'], cost)}: {best['genotype']}")
    return result


def _damaged_project(path: str, config_path: str) -> str | None:
    """What is wrong with a project's search.json when its trials are on disk, else None."""
    import glob

    has_trials = bool(glob.glob(os.path.join(path, TUNER_FOLDER, "trial_*", "trial.json")))
    if not os.path.exists(config_path):
        return f"{config_path} is missing although {path!r} holds trials" if has_trials else None
    try:
        saved = read_json(config_path)
        if isinstance(saved, dict) and isinstance(saved.get("config", {}), dict):
            return None
        problem = "incomplete"
    except (OSError, ValueError) as error:
        problem = f"unreadable: {type(error).__name__}"
    return f"{config_path} is damaged ({problem})"


def _clear_project(path: str) -> None:
    import shutil

    for name in ("search.json", "trials.csv", "pareto.csv", "best_genotype.json", "prescreen.json"):
        if os.path.exists(os.path.join(path, name)):
            os.unlink(os.path.join(path, name))
    for name in (TUNER_FOLDER, "latency", "supernet"):
        if os.path.isdir(os.path.join(path, name)):
            shutil.rmtree(os.path.join(path, name))


def _fmt_cost(value, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "latency":
        return f"{value * 1e3:.3f}ms"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.3g}{unit}"
    return f"{value:g}"


def _progress_line(row: dict, total: int, reward: Reward, best: dict | None, seconds: float) -> str:
    number = int(row["trial_id"]) + 1 if str(row["trial_id"]).isdigit() else row["trial_id"]
    head = f"trial {number}/{total} {row['status']:<9}"
    if row["status"] == "COMPLETED":
        body = (f"reward {row['reward']:.4f} accuracy {row['accuracy']:.4f} "
                f"{reward.cost} {_fmt_cost(row['cost'], reward.cost)}")
    else:
        body = row["reason"] or "-"
    tail = f" | best {best['reward']:.4f} (trial {best['trial_id']})" if best else ""
    return f"{head} {body} [{seconds:.1f}s]{tail} {row['genotype']}"
