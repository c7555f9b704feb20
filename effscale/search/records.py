"""A search project's records: trials.csv, pareto.csv, best_genotype.json and search.json written
from Keras Tuner's trials, :class:`SearchResult`, and loading a project (its trials, its results,
its oracle)."""

from __future__ import annotations

import csv
import glob
import io
import os
import re
from dataclasses import dataclass, field

from effscale.common.errors import UserError
from effscale.model.genotype import Genotype
from effscale.common.io import read_json, write_json, write_text
from effscale.common.migrations import current, read_state, write_state
from effscale.search.config import SearchRecord
from effscale.search.objectives import OBJECTIVE, pareto_front
from effscale.search.space import SearchSpace

TUNER_FOLDER = "tuner"
CSV_FIELDS = ("trial_id", "status", "genotype", "accuracy", "cost", "reward", "macs", "params", "latency",
              "epochs", "reason")
SEED_FIELDS = ("accuracy_seeds", "accuracy_std")  # columns of searches with several seeds per trial


def _last(trial, name):
    try:
        if trial.metrics.exists(name):
            value = trial.metrics.get_last_value(name)
            return None if value is None else float(value)
    except Exception:  # noqa: BLE001
        return None
    return None


def _reason(trial) -> str:
    if trial.status not in ("FAILED", "INVALID") or not trial.message:
        return ""
    lines = [line.strip() for line in str(trial.message).strip().splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    return re.sub(r"^[\w.]*(FailedTrialError|Error|Exception):\s*", "", last)[:300]


def trial_records(trials, space: SearchSpace) -> list[dict]:
    """One plain dict per Keras Tuner trial, ordered by trial id."""
    records = []
    for trial in sorted(trials, key=lambda t: (len(t.trial_id), t.trial_id)):
        values = trial.hyperparameters.values if trial.hyperparameters else {}
        try:
            genotype = space.to_genotype(values).encode() if values else ""
        except UserError:
            genotype = ""
        records.append({
            "trial_id": trial.trial_id, "status": trial.status, "genotype": genotype,
            "accuracy": _last(trial, "accuracy"), "cost": _last(trial, "cost"), "reward": _last(trial, OBJECTIVE),
            "macs": _last(trial, "macs"), "params": _last(trial, "params"), "latency": _last(trial, "latency"),
            "epochs": _last(trial, "epochs"), "reason": _reason(trial), "accuracy_seeds": _seeds(trial),
            "accuracy_std": _last(trial, "accuracy_std")})
    return records


def _seeds(trial) -> list[float] | None:
    """Each seed's accuracy of a trial trained with several seeds (None with one seed)."""
    values = []
    while trial.metrics.exists(f"accuracy_seed{len(values)}"):
        values.append(_last(trial, f"accuracy_seed{len(values)}"))
    return values or None


def _csv(rows: list[dict], fields=CSV_FIELDS) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(fields), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row.get(k)) for k in fields})
    return buffer.getvalue()


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ";".join(repr(float(v)) for v in value)
    return value


def best_record(records: list[dict]) -> dict | None:
    done = [r for r in records if r["status"] == "COMPLETED" and r["reward"] is not None]
    return max(done, key=lambda r: (r["reward"], -int(r["trial_id"]) if r["trial_id"].isdigit() else 0)) if done else None


def write_outputs(project_dir: str, records: list[dict], config: SearchRecord | None = None) -> dict:
    """Write trials.csv, pareto.csv, best_genotype.json and search.json, each atomically."""
    done = [r for r in records if r["status"] == "COMPLETED"]
    front = pareto_front(done)
    best = best_record(records)
    fields = CSV_FIELDS + (SEED_FIELDS if any(r.get("accuracy_seeds") for r in records) else ())
    write_text(os.path.join(project_dir, "trials.csv"), _csv(records, fields))
    write_text(os.path.join(project_dir, "pareto.csv"), _csv(front, fields))
    if best:
        write_json(os.path.join(project_dir, "best_genotype.json"), Genotype.parse(best["genotype"]).to_dict())
    summary_path = os.path.join(project_dir, "search.json")
    summary = read_state(summary_path, "search") if os.path.exists(summary_path) else {}
    if config is not None:
        summary["config"] = config.to_dict()
    counts: dict = {}
    for r in records:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    summary["summary"] = {"trials": len(records), "status": counts, "best": best, "pareto": front}
    write_state(summary_path, summary)
    return summary["summary"]


# -- results -----------------------------------------------------------------------------------
@dataclass
class SearchResult:
    """What a search found: the best genotype, every trial, the Pareto front."""

    best_genotype: Genotype | None
    best: dict | None
    trials: list[dict]
    pareto: list[dict]
    project_dir: str
    config: dict = field(default_factory=dict)
    reevaluation: dict | None = None  # the re-evaluation stage's candidates, winner and verdict

    def to_dict(self) -> dict:
        return {"best_genotype": self.best_genotype.encode() if self.best_genotype else None, "best": self.best,
                "trials": self.trials, "pareto": self.pareto, "project_dir": self.project_dir,
                "reevaluation": self.reevaluation}


def load_trials(project_dir: str):
    """Keras Tuner trials read from ``DIR/tuner/trial_*/trial.json`` (unreadable files skipped)."""
    from effscale.search import _keras_tuner as trial_module

    trials = []
    for fname in glob.glob(os.path.join(project_dir, TUNER_FOLDER, "trial_*", "trial.json")):
        try:
            trials.append(trial_module.Trial.from_state(read_json(fname)))
        except (ValueError, KeyError, TypeError, OSError):
            continue
    return trials


def read_results(project_dir: str) -> SearchResult:
    """The recorded results of a project dir (for ``effscale trials``)."""
    path = os.path.join(os.fspath(project_dir), "search.json")
    if not os.path.isfile(path):
        raise UserError(f"{project_dir!r} is not an effscale search project (no search.json)")
    try:
        saved = read_json(path)
    except ValueError:
        raise UserError(f"{path!r} does not parse") from None
    saved = current(saved, path, "search")
    config = saved.get("config", {})
    space = SearchSpace.from_dict(config["space"])
    records = trial_records(load_trials(project_dir), space)
    best = best_record(records)
    done = [r for r in records if r["status"] == "COMPLETED"]
    return SearchResult(Genotype.parse(best["genotype"]) if best else None, best, records, pareto_front(done),
                        os.fspath(project_dir), config)


def load_oracle(project_dir: str):
    """The oracle of a search project, reloaded from its saved state exactly as a rerun does
    (population, controller, random state), without running anything.

    >>> load_oracle("/nonexistent")
    Traceback (most recent call last):
    ...
    effscale.common.errors.UserError: '/nonexistent' is not an effscale search project (no search.json)
    """
    path = os.path.join(os.fspath(project_dir), "search.json")
    if not os.path.isfile(path):
        raise UserError(f"{project_dir!r} is not an effscale search project (no search.json)")
    from effscale.search.assembly import assemble
    from effscale.search.config import SearchConfig
    from effscale.search._keras_tuner import set_project_dir

    # The saved record rebuilt into its config and assembled as a run does (its train_fraction too).
    oracle = assemble(SearchConfig.from_record(read_state(path, "search")["config"]), os.fspath(project_dir)).oracle
    set_project_dir(oracle, os.fspath(project_dir), TUNER_FOLDER)
    if os.path.exists(os.path.join(os.fspath(project_dir), TUNER_FOLDER, "oracle.json")):
        oracle.reload()
    return oracle


def write_prescreen(path: str, oracle, text: str | None) -> None:
    if text:
        write_json(os.path.join(path, "prescreen.json"), {"prescreen": text, "log": oracle.prescreen_log})
