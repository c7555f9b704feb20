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
    logs/NAME/         TensorBoard logs of every member under one log dir
    results.json       everything the report shows
    report.md, report.html, accuracy_vs_macs.png, search_history.png
"""

from __future__ import annotations

import os
import time

from effscale.config import FamilyConfig
from effscale.errors import UserError
from effscale.io import read_json, write_json, write_text
from effscale.progress import FamilyProgress


def _saved_config(saved):
    """A run's saved configuration as today's FamilyConfig reads it: keys added since an older
    effscale wrote it take their defaults, so its runs still resume."""
    try:
        return FamilyConfig.from_dict(saved).to_dict()
    except (UserError, TypeError, AttributeError):
        return saved


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
            return state
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
            if _saved_config(self.state.get("config")) != config.to_dict():
                raise UserError(f"{self.path!r} holds a run with a different configuration: "
                                "choose another --out, or rerun with the same configuration to resume")
        elif os.path.isdir(self.path) and os.listdir(self.path):
            raise UserError(f"{self.path!r} is not empty and holds no effscale run")
        from effscale.preflight import check_output_folder

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
        write_json(self.state_path, self.state)

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

    ``config`` is a :class:`~effscale.config.FamilyConfig`, a mapping, or a YAML/TOML path.
    ``verbose``: 0 quiet, 1 family progress and one line per epoch, 2 Keras progress bars.

    >>> run_family({"dataset": ""}, "/tmp/never-written")
    Traceback (most recent call last):
    ...
    effscale.errors.UserError: config key 'dataset' is missing: name a dataset ('digits', 'tfds:NAME' or a folder)
    """
    from effscale.preflight import check_dataset

    config = _load_config(config)
    run = RunDirectory(out_dir)
    run.check_can_hold(config)
    check_dataset(config.dataset, config.data_dir or None, config.validation_fraction)  # before anything is written
    run.open(config)
    progress = progress or FamilyProgress(quiet=verbose == 0)
    keras_verbose = {0: 0, 1: 2}.get(verbose, 1)

    baseline = _baseline_stage(run, config, progress, keras_verbose)
    coefficients = _coefficient_stage(run, config, baseline, progress, keras_verbose)
    variants = _scaling_stage(run, config, baseline, coefficients, progress)
    results = _results(run, config, baseline, coefficients, variants)
    write_json(run.join("results.json"), results)

    from effscale.cost import multiply_adds

    # Work per member: a fixed part (tracing, evaluation, latency) plus a part that grows with
    # its multiply-adds, relative to the smallest member.
    from effscale.genotype import Genotype

    base = Genotype.parse(run.stage("scaling")["base_genotype"])
    macs = {v.name: multiply_adds(base, v, classes=10) for v in variants}
    smallest = min(macs.values())
    progress.plan_training({name: config.training.epochs * (1 + m / smallest) for name, m in macs.items()})
    for variant in variants:
        stage = f"train:{variant.name}"
        if run.is_done(stage):
            progress.skip("train", variant.name)
            continue
        progress.start("train", variant.name)
        run.begin(stage)
        record = _train_variant(run, config, baseline, variant, keras_verbose)
        run.complete(stage, results=record)
        progress.finish("train", variant.name, f"test top-1 {record.get('test_top1', float('nan')):.4f}")
        results = _results(run, config, baseline, coefficients, variants)
        write_json(run.join("results.json"), results)

    from effscale.report import write_report

    write_report(run.path)
    if not run.is_done("report"):
        run.complete("report")
    best = best_member(results)
    if best:
        progress.say(f"family done: best on validation {best['name']}, test top-1 {best['test_top1']:.4f}; "
                     f"report in {run.join('report.html')}")
    return results


def _baseline_stage(run: RunDirectory, config: FamilyConfig, progress, keras_verbose):
    from effscale.genotype import Genotype
    from effscale.zoo import load_genotype

    if run.is_done("search"):
        progress.skip("search")
        return Genotype.parse(run.stage("search")["genotype"])
    if not config.search.enabled:
        genotype = load_genotype(config.baseline)
        run.complete("search", genotype=genotype.encode(), source="baseline", trials=[], pareto=[])
        return genotype
    from effscale.search import run_search

    search = config.search
    progress.start("search", f"({search.oracle}, {search.trials} trials, {search.cost} target {search.target:g})")
    run.begin("search")
    result = run_search(
        config.baseline, oracle=search.oracle, cost=search.cost, target=search.target,
        constraint=search.constraint, trials=search.trials, epochs=search.epochs, dataset=config.dataset,
        project_dir=run.join("search"), seed=search.seed, resolution=search.resolution or None,
        width=search.width, verbose=keras_verbose, proxy=search.proxy or None, seeds=search.seeds,
        top_k=search.top_k, reevaluate_seeds=search.reevaluate_seeds)
    genotype = result.best_genotype
    run.complete("search", genotype=genotype.encode(), source="search", cost=search.cost,
                 trials=_plain(result.trials), pareto=_plain(result.pareto))
    progress.finish("search", summary=f"best {genotype.key}")
    return genotype


def _coefficient_stage(run, config: FamilyConfig, baseline, progress, keras_verbose) -> dict:
    settings = config.coefficients
    if not settings.search:
        return {"alpha": settings.alpha, "beta": settings.beta, "gamma": settings.gamma, "searched": False}
    if run.is_done("coefficients"):
        progress.skip("coefficient search")
        return run.stage("coefficients")["coefficients"]
    from effscale.coefficients import search_coefficients

    progress.start("coefficient search", f"(grid of {settings.max_trials} at phi = 1)")
    run.begin("coefficients")
    found = search_coefficients(
        _scaled_base(config, baseline), dataset=config.dataset, project_dir=run.join("coefficients"),
        epochs=settings.epochs, max_trials=settings.max_trials, step=settings.grid_step,
        tolerance=settings.tolerance, batch_size=config.training.batch_size, seed=config.seed,
        verbose=keras_verbose)
    run.complete("coefficients", coefficients=found)
    progress.finish("coefficient search", summary=f"alpha {found['alpha']}, beta {found['beta']}, gamma {found['gamma']}")
    return found


def _scaled_base(config: FamilyConfig, baseline):
    from effscale.scaling import scale_genotype

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
    from effscale.scaling import Variant
    from effscale.variants import resolve_family

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


def _train_variant(run, config: FamilyConfig, baseline, variant, keras_verbose) -> dict:
    from effscale.genotype import Genotype
    from effscale.train import train_variant

    base = Genotype.parse(run.stage("scaling")["base_genotype"])
    training = config.training
    recipe = None
    if training.recipe:
        from effscale.recipe import Recipe

        recipe = Recipe.from_dict(dict(training.recipe))
    return _plain(train_variant(
        base, variant, dataset=config.dataset, recipe=recipe, strategy=training.strategy,
        out_dir=run.join("variants", variant.name), epochs=training.epochs, batch_size=training.batch_size,
        mixed_precision=training.mixed_precision, augment=training.augment, seed=config.seed,
        data_dir=config.data_dir or None, validation_fraction=config.validation_fraction,
        verbose=keras_verbose, log_dir=run.join("logs", variant.name)))


def _results(run, config: FamilyConfig, baseline, coefficients: dict, variants) -> dict:
    from effscale.describe import stage_rows
    from effscale.genotype import Genotype
    from effscale.scaling import Variant

    base = Genotype.parse(run.stage("scaling")["base_genotype"])
    search = run.stage("search")
    rows = []
    for variant in variants:
        record = {**variant.to_dict()}
        stage = run.stage(f"train:{variant.name}")
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
            "images_per_second": trained.get("train_images_per_second"),
            "epochs": trained.get("epochs_done"),
            "resumed_from_epochs": trained.get("resumed_from_epochs"),
        })
        rows.append(record)
    return {
        "dataset": config.dataset,
        "config": config.to_dict(),
        "baseline": {"genotype": search.get("genotype"), "source": search.get("source"),
                     "scaled_base": base.encode(),
                     "stages": stage_rows(base, Variant("base", 1.0, 1.0, base.resolution))},
        "coefficients": dict(coefficients, split="validation") if coefficients.get("searched") else coefficients,
        "search": {"cost": search.get("cost"), "split": "validation", "trials": search.get("trials", []),
                   "pareto": search.get("pareto", [])},
        "splits": {"selection": "validation: the search, the coefficient search and the best member",
                   "results": "test: every member's test_* numbers; nothing is selected on it"},
        "variants": rows,
        "reference_points": config.reference_points,
    }


def best_member(results: dict) -> dict | None:
    """The member with the best validation top-1 (selection never looks at the test split).

    >>> best_member({"variants": [{"name": "a", "validation_top1": 0.8, "test_top1": 0.9},
    ...                           {"name": "b", "validation_top1": 0.85, "test_top1": 0.7}]})["name"]
    'b'
    """
    done = [v for v in results.get("variants", []) if v.get("validation_top1") is not None]
    return max(done, key=lambda v: v["validation_top1"], default=None)


def _plain(value):
    """JSON-safe copy: numpy scalars to Python numbers, dataclasses and tuples to plain data."""
    from effscale.io import plain_json

    return plain_json(value)


def run_status(out_dir: str) -> str:
    """A readable table of where a family run stands (``effscale status DIR``)."""
    from effscale.describe import format_table

    run = RunDirectory(out_dir)
    if run.state is None:
        raise UserError(f"{out_dir!r} holds no effscale family run (no state.json)")
    rows = []
    for name, record in run.state["stages"].items():
        spent = ""
        if record.get("started") and record.get("finished"):
            spent = f"{record['finished'] - record['started']:.0f} s"
        result = record.get("results") or {}
        detail = f"test top-1 {result['test_top1']:.4f}" if result.get("test_top1") is not None \
            else record.get("genotype", "")[:60]
        rows.append([name, record["status"], record["attempts"], spent, detail])
    scaling = run.state["stages"].get("scaling", {})
    planned = [v["name"] for v in scaling.get("variants", [])]
    for name in planned:
        if f"train:{name}" not in run.state["stages"]:
            rows.append([f"train:{name}", "pending", 0, "", ""])
    return format_table(["stage", "status", "attempts", "time", "detail"], rows)
