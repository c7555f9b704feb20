"""The entry point of a search: :func:`run_search` validates its input, then runs the oracle's
trials through the tuner (or serves them as the distributed chief) and writes the records."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import time

from effscale.common.errors import UserError
from effscale.model.genotype import Genotype
from effscale.common.io import read_json
from effscale.common.migrations import read_state, write_state
from effscale.common.interrupt import scoped_environment
from effscale.common.lock import LOCK_NAME, folder_lock
from effscale.search.config import SearchConfig
from effscale.search.distributed import role as process_role, serve_chief
from effscale.search.local_workers import check_workers, chief_environment, start_workers, worker_threads
from effscale.search.assembly import assemble
from effscale.search.objectives import Reward, pareto_front
from effscale.search.records import (TUNER_FOLDER, SearchResult, best_record, load_trials, trial_records,
                                     write_outputs, write_prescreen)
from effscale.search.tuner import make_tuner_class


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
def run_search(config=None, project_dir: str = "effscale-search", *, verbose: int = 1, overwrite: bool = False,
               stream=None, repair: bool = False, worker_timeout: float = 300.0, workers: int = 0,
               _local_workers: int = 0, **options) -> SearchResult:
    """Run (or resume) the search ``config`` in ``project_dir``; return a :class:`SearchResult`.

    ``config`` is a :class:`~effscale.search.config.SearchConfig`, which holds every search option
    (keywords given beside it replace its fields), or a baseline (name, genotype string, JSON file
    or Genotype) with the options as keywords: ``run_search("tiny", oracle="random", trials=3)``
    is ``run_search(SearchConfig("tiny", oracle="random", trials=3))``. The options:

    ``cost`` is ``macs``, ``params`` or ``latency`` (seconds per image, LiteRT on this CPU), all
    counted for the genotype at its design resolution; ``target`` T in those units (default: the
    baseline's own cost). ``constraint`` ``soft`` (w = -0.07) or ``hard`` (alpha 0, beta -1);
    ``alpha`` / ``beta`` override. ``max_macs`` / ``max_params`` / ``max_latency`` are hard limits
    checked before training. Candidates train ``epochs`` epochs on ``dataset`` at
    ``width`` / ``depth`` x and ``resolution`` px (default: the baseline's, at most 64).
    ``open_choices`` / ``options`` / ``stages`` configure the space (:class:`SearchSpace`).
    ``prescreen`` ``"PROXY:N"`` (random and evolution oracles): each trial trains the best of N
    untried candidates by a zero-cost proxy (:mod:`effscale.search.zero_cost`) on the first validation
    batch at the proxy variant; DIR/prescreen.json records every prescreen, and each trial gets
    its candidate's ``proxy_score`` metric.
    ``proxy`` is :class:`ProxySettings` or the path of a proxy file written by ``effscale proxy``
    (its epochs, schedule, resolution, width and training fraction then replace ``epochs``,
    ``resolution``, ``width`` and ``train_fraction``). ``train_fraction`` trains candidates on a
    class-balanced fraction of the training split.
    ``seeds`` trains every candidate that many times (seeds ``seed``, ``seed + 1``, ...); the
    objective is the mean accuracy's reward and each seed's accuracy is recorded. With
    ``reevaluate_seeds`` >= 2 the ``top_k`` candidates are trained again to that many seeds at
    the end (their trial seeds reused) and the winner is chosen by the mean over seeds; when the
    best are within noise of each other (:mod:`effscale.search.reevaluate`), the cheapest wins.
    DIR/reevaluation.json records it and ``best_genotype.json`` is the winner.

    Runtime options, not part of the search: ``verbose`` (0: no progress lines), ``stream`` (where
    they go, default stdout), ``overwrite`` (start over), ``repair`` (rebuild a damaged or missing
    ``search.json`` from the config and the trials on disk; none is lost) and ``worker_timeout``
    (distributed: seconds of silence before a worker's trial is FAILED). ``workers`` N >= 1
    trains the trials in N worker processes started here, this process serving the oracle as
    their chief on a free loopback port (:mod:`effscale.search.local_workers`); same results
    files, same resume.
    All input is validated before the project dir is touched; bad input raises UserError.

    >>> run_search(SearchConfig("tiny", trials=0), "unused")
    Traceback (most recent call last):
    ...
    effscale.common.errors.UserError: trials must be a positive integer, got 0
    """
    if isinstance(config, SearchConfig):
        config = dataclasses.replace(config, **options) if options else config
    else:
        config = SearchConfig("tiny" if config is None else config, **options)
    stream = stream or sys.stdout
    if check_workers(workers):
        with scoped_environment(chief_environment()):
            return run_search(config, project_dir, verbose=verbose, overwrite=overwrite, stream=stream,
                              repair=repair, worker_timeout=worker_timeout, _local_workers=workers)
    role = process_role()
    if role == "worker":  # a worker sends hyperparameters over gRPC (the chief's server quiets them too)
        from effscale.search._keras_tuner import quiet_condition_protos

        quiet_condition_protos()
    if not (isinstance(worker_timeout, (int, float)) and worker_timeout > 0):
        raise UserError(f"worker_timeout must be positive, got {worker_timeout!r}")
    dataset, oracle, prescreen = config.dataset, config.oracle, config.prescreen
    path = check_project_dir(project_dir)
    config_path = os.path.join(path, "search.json")
    damaged = _damaged_project(path, config_path) if not overwrite and role != "worker" else None
    if damaged and not repair:
        raise UserError(damaged + "; rerun the same command with --repair to rebuild it from the trials, "
                        "which are kept")
    saved = None
    if os.path.exists(config_path) and not overwrite and role != "worker" and not damaged:
        saved = read_state(config_path, "search").get("config", {})
    elif not os.path.exists(config_path) and os.path.isdir(path) and set(os.listdir(path)) - {LOCK_NAME} \
            and role != "worker" and not damaged:
        raise UserError(f"project dir {project_dir!r} is not empty and is not an effscale search project")
    from effscale.data.pipeline import check_source

    check_source(dataset)
    if os.path.isdir(str(dataset)):  # every image decodes (or is skipped on request) before any trial
        from effscale.common.preflight import check_dataset

        check_dataset(str(dataset))

    # The search is assembled before anything is written: a bad oracle option is one line, no files.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parts = assemble(config, path, heartbeat_s=max(0.5, min(10.0, worker_timeout / 4)))
    space, reward, settings, record = parts.space, parts.reward, parts.resolved.settings, parts.record
    runner, screen, keras_oracle, data = parts.runner, parts.prescreen, parts.oracle, parts.data
    key = record.mismatch(saved) if saved is not None else None
    if key:
        raise UserError(f"project dir {project_dir!r} holds a different search ({key} differs); "
                        "use a new project dir or overwrite")
    # -- from here on the project dir is written --------------------------------------------------
    # One search per project dir (a chief's workers share it with the chief): a second one refuses.
    os.makedirs(path, exist_ok=True)
    with folder_lock(path, "search") if role != "worker" else contextlib.nullcontext():
        if overwrite and role != "worker":
            _clear_project(path)
        if role != "worker":
            summary = read_state(config_path, "search") if os.path.exists(config_path) and not damaged else {}
            summary["config"] = record.to_dict()
            write_state(config_path, summary)
            if damaged:
                kept = trial_records(load_trials(path), space)
                write_outputs(path, kept, record)
                if verbose:
                    print(f"repaired {config_path} from this command and the {len(kept)} trial(s) on disk",
                          file=stream, flush=True)
        if screen:
            from effscale.search.oracles.prescreen import proxy_score_of

            runner.extra_metrics = lambda values: proxy_score_of(keras_oracle, values)
        if parts.entry.one_shot:
            from effscale.search.oneshot.task import OneShotTask, attach

            attach(keras_oracle, OneShotTask(space, reward, parts.resolved.variant, settings, data,
                                             os.path.join(path, "supernet"), config.seed), verbose, stream)
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
                summary = write_outputs(path, all_records, record)
                write_prescreen(path, keras_oracle, prescreen)
                best = summary["best"]
            else:
                best = None
            seconds = seconds if seconds is not None else time.monotonic() - started
            say(_progress_line(row, config.trials, reward, best, seconds))

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
            if _local_workers:
                say(f"{_local_workers} worker process(es), {worker_threads(_local_workers)} TensorFlow "
                    "thread(s) each")
            with start_workers(config, path, _local_workers, worker_timeout) as local:
                serve_chief(keras_oracle, worker_timeout, on_trial_end=lambda t: progress(t, None), workers=local)
        else:
            import keras_tuner

            from effscale.search._keras_tuner import trials_fail_quietly

            try:
                with trials_fail_quietly():
                    tuner.search()
            except keras_tuner.errors.FatalError as stop:  # a write inside a trial failed (disk full)
                if getattr(stop, "failure", None) is None:
                    raise
                raise stop.failure from None
        if role == "worker":
            records = trial_records(load_trials(path), space)
        else:
            records = trial_records(keras_oracle.trials.values(), space)
            write_outputs(path, records, record)
            write_prescreen(path, keras_oracle, prescreen)
        best = best_record(records)
        done = [r for r in records if r["status"] == "COMPLETED"]
        reevaluation = None
        if config.reevaluate_seeds and best and role != "worker":
            from effscale.search.reevaluate import run_reevaluation

            reevaluation = run_reevaluation(path, records, runner, config.top_k, config.reevaluate_seeds, say)
            best = next(r for r in records if r["trial_id"] == reevaluation["winner"]["trial_id"])
        result = SearchResult(Genotype.parse(best["genotype"]) if best else None, best, records, pareto_front(done),
                              path, record.to_dict(), reevaluation)
        if best:
            say(f"best: trial {trial_number(best['trial_id'])} reward {best['reward']:.4f} accuracy {best['accuracy']:.4f} "
                f"{reward.cost} {_fmt_cost(best['cost'], reward.cost)}: {best['genotype']}")
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

    for name in ("search.json", "trials.csv", "pareto.csv", "best_genotype.json", "prescreen.json",
                 "reevaluation.json"):
        if os.path.exists(os.path.join(path, name)):
            os.unlink(os.path.join(path, name))
    for name in (TUNER_FOLDER, "latency", "supernet", "trainings"):
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


def trial_number(trial_id) -> "int | str":
    """The number a trial is shown with everywhere: Keras Tuner's id plus one ("trial 1/6" is id 0).

    >>> trial_number("0"), trial_number("custom")
    (1, 'custom')
    """
    return int(trial_id) + 1 if str(trial_id).isdigit() else trial_id


def _progress_line(row: dict, total: int, reward: Reward, best: dict | None, seconds: float) -> str:
    number = trial_number(row["trial_id"])
    head = f"trial {number}/{total} {row['status']:<9}"
    if row["status"] == "COMPLETED":
        body = (f"reward {row['reward']:.4f} accuracy {row['accuracy']:.4f} "
                f"{reward.cost} {_fmt_cost(row['cost'], reward.cost)}")
    else:
        body = row["reason"] or "-"
    tail = f" | best {best['reward']:.4f} (trial {trial_number(best['trial_id'])})" if best else ""
    return f"{head} {body} [{seconds:.1f}s]{tail} {row['genotype']}"
