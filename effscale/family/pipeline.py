"""The family pipeline: search a baseline -> pick coefficients -> scale -> train every variant -> report.

A run directory records every stage in ``state.json`` (written atomically). Rerunning the
same command after a kill skips what is finished and resumes what is not: the search
reloads its Keras Tuner project, a half-trained variant restarts from its last epoch backup.

Layout of a run directory::

    config.json        the validated configuration (a rerun must match it)
    state.json         stage records: status, attempts, timings, results
    search/            the Keras Tuner project of the baseline search
    coefficients/      the Keras Tuner project of the coefficient grid search
    variants/NAME/     each member: model.keras, results.json, epoch backups
    variants/reference-NAME/   the reference family's members (the un-searched baseline)
    logs/NAME/         TensorBoard logs of every member under one log dir
    results.json       everything the report shows
    report.md, report.html (self-contained), accuracy_vs_macs.png, search_candidates.png,
    search_history.png, training_curves.png

With the search on, a *reference family* is trained too (``reference_family: false`` turns it
off): the un-searched baseline, scaled to the same base with the same variants and
coefficients and trained with the same data and recipe, so the report shows whether the
search helped.
"""

from __future__ import annotations

import os
import time

from effscale.family.config import FamilyConfig
from effscale.common.errors import UserError
from effscale.common.io import plain_json, read_json, write_json, write_text
from effscale.common.migrations import current, write_state
from effscale.common.lock import LOCK_NAME, folder_lock
from effscale.family.progress import FamilyProgress


class RunDirectory:
    """A family run's folder and its ``state.json``."""

    def __init__(self, path: str):
        self.path = os.path.abspath(path)
        self.state_path = os.path.join(self.path, "state.json")
        self.previous_path = self.state_path + ".previous"
        self.state = self._read_state() if os.path.isfile(self.state_path) else None

    def _read_state(self) -> dict:
        """The state, or a UserError naming the damaged file and how to recover."""
        try:
            state = read_json(self.state_path)
            problem = None if isinstance(state, dict) and isinstance(state.get("stages"), dict) else "incomplete"
        except (OSError, ValueError) as error:
            problem = f"unreadable: {type(error).__name__}"
        if problem is None:
            return current(state, self.state_path, "family state")
        recovery = (f"restore its previous version with `cp {self.previous_path} {self.state_path}` and rerun "
                    "(finished stages resume from their own checkpoints)" if os.path.isfile(self.previous_path)
                    else f"move {self.path!r} away and start the run again")
        raise UserError(f"family state {self.state_path!r} is damaged ({problem}); {recovery}")

    def join(self, *parts: str) -> str:
        return os.path.join(self.path, *parts)

    def check_can_hold(self, config: FamilyConfig) -> None:
        """Refuse a folder that holds something else, before anything is written."""
        if os.path.isfile(self.path):
            raise UserError(f"output {self.path!r} is a file, not a folder")
        if self.state is not None:
            if _identity(self.state.get("config")) != _identity(config.to_dict()):
                raise UserError(f"{self.path!r} holds a run with a different configuration: "
                                "choose another --out, or rerun with the same configuration to resume")
        elif os.path.isdir(self.path) and set(os.listdir(self.path)) - {LOCK_NAME}:
            raise UserError(f"{self.path!r} is not empty and holds no effscale run")
        from effscale.common.preflight import check_output_folder

        check_output_folder(self.path)

    def open(self, config: FamilyConfig) -> None:
        os.makedirs(self.path, exist_ok=True)
        if self.state is None:
            self.state = {"config": config.to_dict(), "created": time.time(), "stages": {}}
            write_json(self.join("config.json"), config.to_dict())
            self.save()

    def save(self) -> None:
        """Write the state atomically, keeping the version before it as ``state.json.previous``."""
        if os.path.isfile(self.state_path):
            with open(self.state_path) as handle:
                write_text(self.previous_path, handle.read())
        write_state(self.state_path, self.state)

    def stage(self, name: str) -> dict:
        return self.state["stages"].setdefault(name, {"status": "pending", "attempts": 0})

    def begin(self, name: str) -> dict:
        record = self.stage(name)
        record.update(status="running", attempts=record["attempts"] + 1, started=time.time())
        self.save()
        return record

    def complete(self, name: str, **data) -> dict:
        record = self.stage(name)
        record.update(status="done", finished=time.time(), **data)
        self.save()
        return record

    def is_done(self, name: str) -> bool:
        return self.stage(name)["status"] == "done"


def _identity(config_data) -> dict | None:
    """What a resumed run must share with the run it resumes: the configuration without
    ``search.workers`` (how many processes train the search's trials, not what it finds)."""
    data = plain_json(config_data)
    if isinstance(data, dict) and isinstance(data.get("search"), dict):
        data = {**data, "search": {k: v for k, v in data["search"].items() if k != "workers"}}
    return data


def _load_config(config) -> FamilyConfig:
    if isinstance(config, FamilyConfig):
        return config.check()
    if isinstance(config, dict):
        return FamilyConfig.from_dict(config)
    if isinstance(config, str):
        return FamilyConfig.load(config)
    raise UserError(f"config must be a FamilyConfig, a mapping or a file path, got {type(config).__name__}")


def run_family(config, out_dir: str = "effscale-run", verbose: int = 1, progress: FamilyProgress | None = None) -> dict:
    """Run (or resume) a whole family; return the results record that the report shows.

    ``config`` is a :class:`~effscale.family.config.FamilyConfig`, a mapping, or a YAML/TOML path.
    ``verbose``: 0 quiet, 1 family progress and one line per epoch, 2 Keras progress bars.

    >>> run_family({"dataset": ""}, "/tmp/never-written")
    Traceback (most recent call last):
    ...
    effscale.common.errors.UserError: config key 'dataset' is missing: name a dataset ('digits', 'tfds:NAME' or a folder)
    """
    from effscale.common.preflight import check_dataset

    config = _load_config(config)
    run = RunDirectory(out_dir)
    run.check_can_hold(config)
    check_dataset(config.data, batch_size=config.training.batch_size)  # before anything is written
    os.makedirs(run.path, exist_ok=True)
    with folder_lock(run.path, "family"):  # one process per run directory: a second one refuses
        run.open(config)
        progress = progress or FamilyProgress(quiet=verbose == 0)
        keras_verbose = {0: 0, 1: 2}.get(verbose, 1)

        baseline = _baseline_stage(run, config, progress, keras_verbose)
        coefficients = _coefficient_stage(run, config, baseline, progress, keras_verbose)
        variants = _scaling_stage(run, config, baseline, coefficients, progress)
        results = _results(run, config, baseline, coefficients, variants)
        write_state(run.join("results.json"), results)

        from effscale.model.cost import multiply_adds

        # Work per member: a fixed part (tracing, evaluation, latency) plus a part that grows with
        # its multiply-adds, relative to the smallest member.
        from effscale.model.genotype import Genotype

        base = Genotype.parse(run.stage("scaling")["base_genotype"])
        macs = {v.name: multiply_adds(base, v, classes=10) for v in variants}
        reference = _reference_base(run, config)
        if reference is not None:
            macs.update({REFERENCE_PREFIX + v.name: multiply_adds(reference, v, classes=10) for v in variants})
        smallest = min(macs.values())
        progress.plan_training({name: config.training.epochs * (1 + m / smallest) for name, m in macs.items()})
        reference_base = _reference_base(run, config)
        members = [(variant.name, base, variant) for variant in variants]
        if reference_base is not None:
            members += [(REFERENCE_PREFIX + variant.name, reference_base, variant) for variant in variants]
        for name, genotype, variant in members:
            stage = f"train:{name}"
            if run.is_done(stage):
                progress.skip("train", name)
                continue
            progress.start("train", name)
            record = run.begin(stage)
            trained = _train_variant(run, config, genotype, variant, keras_verbose, name)
            seconds = time.time() - record["started"]
            run.complete(stage, results=trained, seconds=seconds)
            progress.finish("train", name, f"test top-1 {trained.get('test_top1', float('nan')):.4f}", seconds=seconds)
            results = _results(run, config, baseline, coefficients, variants)
            write_state(run.join("results.json"), results)

        from effscale.family.report import write_report

        write_report(run.path)
        if not run.is_done("report"):
            run.complete("report")
        from effscale.family.report import recommendation_line

        progress.say(f"family done. {recommendation_line(results).replace('`', '')} Report: {run.join('report.html')}")
        return results


def _baseline_stage(run: RunDirectory, config: FamilyConfig, progress, keras_verbose):
    from effscale.model.genotype import Genotype
    from effscale.model.zoo import load_genotype

    if run.is_done("search"):
        progress.skip("search")
        return Genotype.parse(run.stage("search")["genotype"])
    if not config.search.enabled:
        genotype = load_genotype(config.baseline)
        run.complete("search", genotype=genotype.encode(), source="baseline", trials=[], pareto=[])
        return genotype
    from effscale.search import run_search

    search = config.search
    target = f"target {search.target:g}" if search.target is not None else "target: the baseline's"
    progress.start("search", f"({search.oracle}, {search.trials} trials, {search.cost} {target})")
    started = run.begin("search")["started"]
    result = run_search(search.search_config(), run.join("search"), verbose=keras_verbose, workers=search.workers)
    genotype = result.best_genotype
    run.complete("search", genotype=genotype.encode(), source="search", cost=search.cost,
                 trials=plain_json(result.trials), pareto=plain_json(result.pareto), setup=_search_setup(result.config),
                 seconds=time.time() - started)
    progress.finish("search", summary=f"best {genotype.key}", seconds=run.stage("search")["seconds"])
    return genotype


def _search_setup(search_config: dict) -> dict:
    """What the report says about the search: oracle, space and its size, proxy, reward."""
    from effscale.search.objectives import exponents
    from effscale.search.space import SearchSpace

    space = search_config.get("space") or {}
    reward = search_config.get("reward") or {}
    setup = {key: search_config.get(key) for key in ("oracle", "resolution", "width", "depth", "trials", "seed")}
    under, over = exponents(reward.get("constraint", "soft"), reward.get("alpha"), reward.get("beta"))
    setup.update(space_reference=space.get("reference"), space_size=SearchSpace.from_dict(space).size if space else None,
                 proxy=search_config.get("proxy"), reward=dict(reward, exponent_under=under, exponent_over=over),
                 cost=reward.get("cost"), target=reward.get("target"), constraint=reward.get("constraint"))
    return plain_json(setup)


REFERENCE_PREFIX = "reference-"


def _reference_base(run, config: FamilyConfig):
    """The un-searched baseline scaled to the family's base, when a reference family is trained."""
    from effscale.model.zoo import load_genotype

    if not (config.reference_family and run.stage("search").get("source") == "search"):
        return None
    return _scaled_base(config, load_genotype(config.baseline))


def _coefficient_stage(run, config: FamilyConfig, baseline, progress, keras_verbose) -> dict:
    settings = config.coefficients
    if not settings.search:
        return {"alpha": settings.alpha, "beta": settings.beta, "gamma": settings.gamma, "searched": False}
    if run.is_done("coefficients"):
        progress.skip("coefficient search")
        return run.stage("coefficients")["coefficients"]
    from effscale.family.coefficients import search_coefficients

    progress.start("coefficient search", f"(grid of {settings.max_trials} at phi = 1)")
    run.begin("coefficients")
    found = search_coefficients(
        _scaled_base(config, baseline), config.data, project_dir=run.join("coefficients"),
        epochs=settings.epochs, max_trials=settings.max_trials, step=settings.grid_step,
        tolerance=settings.tolerance, batch_size=config.training.batch_size, seed=config.seed,
        verbose=keras_verbose)
    run.complete("coefficients", coefficients=found)
    progress.finish("coefficient search", summary=f"alpha {found['alpha']}, beta {found['beta']}, gamma {found['gamma']}")
    return found


def _scaled_base(config: FamilyConfig, baseline):
    from effscale.model.scaling import scale_genotype

    return scale_genotype(baseline, config.scaling.base) if config.scaling.base else baseline


def _family_spec(config: FamilyConfig, coefficients: dict) -> str:
    spec = config.scaling.family.strip()
    parts = spec.split(";")
    with_coefficients = []
    for part in parts:
        if part.strip().startswith("phi=") and "alpha" not in part:
            part = f"{part},alpha={coefficients['alpha']:g},beta={coefficients['beta']:g},gamma={coefficients['gamma']:g}"
        with_coefficients.append(part)
    return ";".join(with_coefficients)


def _scaling_stage(run, config: FamilyConfig, baseline, coefficients: dict, progress):
    from effscale.model.scaling import Variant
    from effscale.model.variants import resolve_family

    if run.is_done("scaling"):
        return [Variant.from_dict(v) for v in run.stage("scaling")["variants"]]
    base = _scaled_base(config, baseline)
    try:
        variants = resolve_family(_family_spec(config, coefficients), base)
    except UserError as error:
        raise UserError(f"config key 'scaling.family': {error}") from None
    run.complete("scaling", base_genotype=base.encode(), variants=[v.to_dict() for v in variants])
    progress.say(f"family of {len(variants)}: " + ", ".join(
        f"{v.name} (w {v.width:g}, d {v.depth:g}, r {v.resolution})" for v in variants))
    return variants


def _train_variant(run, config: FamilyConfig, base, variant, keras_verbose, name: str) -> dict:
    """Train one member (searched or reference: the same recipe, data and variant)."""
    from effscale.training.strategy import Execution
    from effscale.training.train import train_variant

    from effscale.training.recipe import Recipe

    training = config.training
    recipe = Recipe.from_dict(dict(training.recipe)) if training.recipe else Recipe()
    changes = {"epochs": training.epochs, "batch_size": training.batch_size, "augment": training.augment,
               "seed": config.seed}
    recipe = recipe.replace(**{k: v for k, v in changes.items() if v is not None})
    execution = Execution(training.strategy, mixed_precision=training.mixed_precision)
    return plain_json(train_variant(base, variant, config.data, recipe, execution, run.join("variants", name),
                                    verbose=keras_verbose, log_dir=run.join("logs", name)))


def _member_row(run, name: str, variant) -> dict:
    """One member's line of results.json: its variant, numbers, curves and files."""
    record = {**variant.to_dict(), "name": name}
    stage = run.stage(f"train:{name}")
    trained = stage.get("results") or {}
    record.update({
        "status": stage["status"],
        "attempts": stage["attempts"],
        "parameters": trained.get("params"),
        "multiply_adds": trained.get("multiply_adds"),
        "latency_ms": None if trained.get("latency_seconds") is None else 1000 * trained["latency_seconds"],
        **{f"{split}_{metric}": trained.get(f"{split}_{metric}")
           for split in ("test", "validation") for metric in ("top1", "top5", "loss", "examples")},
        "train_seconds": trained.get("train_seconds"),
        "wall_seconds": stage.get("seconds"),
        "images_per_second": trained.get("train_images_per_second"),
        "epochs": trained.get("epochs_done"),
        "resumed_from_epochs": trained.get("resumed_from_epochs"),
        "history": trained.get("history", []),
        "files": _member_files(run, name, trained),
    })
    return record


def _member_files(run, name: str, trained: dict) -> dict:
    """Paths, relative to the run folder, of a member's model, exports and TensorBoard log."""
    import glob

    folder = os.path.join("variants", name)
    files = {"model": None, "exports": [], "logs": None}
    if trained.get("model") and os.path.isfile(run.join(folder, trained["model"])):
        files["model"] = os.path.join(folder, trained["model"])
    for pattern in ("*.tflite", "*.savedmodel", "saved_model*", "*.onnx"):
        files["exports"] += sorted(os.path.relpath(p, run.path) for p in glob.glob(run.join(folder, pattern)))
    if os.path.isdir(run.join("logs", name)):
        files["logs"] = os.path.join("logs", name)
    return files


def _results(run, config: FamilyConfig, baseline, coefficients: dict, variants) -> dict:
    from effscale.model.describe import stage_rows
    from effscale.model.genotype import Genotype
    from effscale.family.recommend import annotate
    from effscale.model.scaling import Variant

    base = Genotype.parse(run.stage("scaling")["base_genotype"])
    search = run.stage("search")
    reference_base = _reference_base(run, config)
    if reference_base is not None:
        reference = {"genotype": config.baseline, "scaled_base": reference_base.encode(),
                     "variants": [_member_row(run, REFERENCE_PREFIX + v.name, v) for v in variants]}
        for member in reference["variants"]:
            member["name"] = member["name"][len(REFERENCE_PREFIX):]
    elif not config.reference_family:
        reference = {"note": "Reference family off (config reference_family: false)."}
    else:
        reference = {"note": "No reference family: the search was off, so the family is the baseline's own."}
    return annotate({
        "dataset": config.dataset,
        "config": config.to_dict(),
        "baseline": {"genotype": search.get("genotype"), "source": search.get("source"),
                     "scaled_base": base.encode(),
                     "stages": stage_rows(base, Variant("base", 1.0, 1.0, base.resolution))},
        "coefficients": dict(coefficients, split="validation") if coefficients.get("searched") else coefficients,
        "search": {"cost": search.get("cost"), "split": "validation", "trials": search.get("trials", []),
                   "pareto": search.get("pareto", []), "setup": search.get("setup"),
                   "seconds": search.get("seconds")},
        "splits": {"selection": "validation: the search, the coefficient search and the recommended member",
                   "results": "test: every member's test_* numbers; nothing is selected on it"},
        "variants": [_member_row(run, v.name, v) for v in variants],
        "reference": reference,
        "reference_points": config.reference_points,
    })


def best_member(results: dict) -> dict | None:
    """The member with the best validation top-1 (selection never looks at the test split).

    >>> best_member({"variants": [{"name": "a", "validation_top1": 0.8, "test_top1": 0.9},
    ...                           {"name": "b", "validation_top1": 0.85, "test_top1": 0.7}]})["name"]
    'b'
    """
    done = [v for v in results.get("variants", []) if v.get("validation_top1") is not None]
    return max(done, key=lambda v: v["validation_top1"], default=None)


def status_rows(out_dir: str) -> list[dict]:
    """Where a family run stands: one record per stage, planned members included."""
    run = RunDirectory(out_dir)
    if run.state is None:
        raise UserError(f"{out_dir!r} holds no effscale family run (no state.json)")
    rows = []
    for name, record in run.state["stages"].items():
        seconds = record.get("seconds")
        if seconds is None and record.get("started") and record.get("finished"):
            seconds = record["finished"] - record["started"]
        result = record.get("results") or {}
        detail = f"test top-1 {result['test_top1']:.4f}" if result.get("test_top1") is not None \
            else record.get("genotype", "")[:60]
        rows.append({"stage": name, "status": record["status"], "attempts": record["attempts"], "seconds": seconds,
                     "detail": detail})
    planned = [v["name"] for v in run.state["stages"].get("scaling", {}).get("variants", [])]
    searched = run.state["stages"].get("search", {}).get("source") == "search"
    if searched and run.state["config"].get("reference_family", True):
        planned += [REFERENCE_PREFIX + name for name in planned]
    for name in planned:
        if f"train:{name}" not in run.state["stages"]:
            rows.append({"stage": f"train:{name}", "status": "pending", "attempts": 0, "seconds": None, "detail": ""})
    return rows


def run_status(out_dir: str, as_json: bool = False) -> str:
    """A readable table (or JSON) of where a family run stands (``effscale status DIR [--json]``).

    Times are written as the console writes them (``1:05``).
    """
    import json

    from effscale.model.describe import format_table
    from effscale.family.progress import format_seconds

    rows = status_rows(out_dir)
    if as_json:
        return json.dumps({"run": os.path.abspath(out_dir), "stages": rows}, indent=2)
    return format_table(["stage", "status", "attempts", "time", "detail"],
                        [[r["stage"], r["status"], r["attempts"],
                          "" if r["seconds"] is None else format_seconds(r["seconds"]), r["detail"]] for r in rows])
