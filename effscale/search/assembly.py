"""One assembly step for a search: :func:`assemble` turns a validated
:class:`~effscale.search.config.SearchConfig` and its data into everything a search runs with:
space, reward (the default target at the dataset's real class count), limits, the trial runner
(with the training fraction), the prescreen and the oracle. :func:`~effscale.search.run_search`,
:func:`~effscale.search.records.load_oracle` (through :meth:`SearchConfig.from_record`) and a
family's search all build their search here, so what a resumed search reloads is what the first
run built; what an oracle needs (a cost function, a one-shot task) comes from its registry entry.

>>> parts = assemble(SearchConfig("tiny", oracle="random", trials=2, target=1e6), "unused")
>>> type(parts.oracle).__name__, parts.runner.train_fraction, parts.record.reward["target"]
('AtomicRandomSearchOracle', None, 1000000.0)
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from effscale.data.spec import DataSpec
from effscale.search.config import ResolvedSearch, SearchConfig
from effscale.search.objectives import exact_cost_fn
from effscale.search.registry import OracleEntry, make_oracle, oracle_entry
from effscale.search.trial import TrialRunner
from effscale.search.zero_cost import make_prescreen


@dataclass
class SearchParts:
    """What :func:`assemble` builds. ``data()`` loads the search's data once (the runner keeps it)."""

    config: SearchConfig
    resolved: ResolvedSearch
    runner: TrialRunner
    prescreen: object            # the prescreen (score_fn, n), or None
    oracle: object               # the keras_tuner.Oracle
    entry: OracleEntry

    @property
    def space(self):
        return self.resolved.space

    @property
    def reward(self):
        return self.resolved.reward

    @property
    def record(self):
        return self.resolved.record

    def data(self):
        return self.runner.data


def assemble(config: SearchConfig, project_dir: str, heartbeat_s: float = 2.5) -> SearchParts:
    """The parts of the search ``config`` run in ``project_dir`` (nothing is written there; the
    data is loaded only when the default target needs its class count, else at the first use).
    ``heartbeat_s``: how often a distributed worker's running trial reports."""
    settings, resolution, width, fraction = config.training()
    runner = TrialRunner(config.space, None, None, settings,
                         DataSpec(config.dataset, resolution=resolution, train_fraction=fraction), width,
                         config.depth, dict(config.latency), seeds=config.seeds, project_dir=project_dir)
    runner.heartbeat_s = heartbeat_s
    resolved = config.resolve(lambda: runner.data.num_classes)
    runner.reward, runner.limits = resolved.reward, resolved.limits
    space, reward = resolved.space, resolved.reward

    def data():
        return runner.data

    entry = oracle_entry(config.oracle)
    cost_of = exact_cost_fn(space, reward, lambda: data().num_classes)
    screen = make_prescreen(config.prescreen, space, resolved.variant, data, settings.seed, reward, cost_of)
    needs = {"cost_fn": cost_of, "reward": reward} if entry.cost_aware and cost_of else {}
    oracle = make_oracle(config.oracle, config.trials, space.hyperparameters(), seed=config.seed,
                         epochs=settings.epochs, prescreen=screen, **config.oracle_options, **needs)
    oracle.verbose = 0
    if config.top_rung_augment:  # the top rung's epochs are the oracle's (its final schedule)
        runner.top_rung = (int(oracle.max_epochs), config.top_rung_augment)
    return SearchParts(config, resolved, runner, screen, oracle, entry)
