"""Search a baseline cell: a Keras Tuner oracle proposes genotypes in a :class:`SearchSpace`,
each is proxy-trained and scored by the MnasNet reward, and every trial is recorded.

One job per module: :mod:`~effscale.search.config` (SearchConfig, targets),
:mod:`~effscale.search.registry` (oracle name -> factory), :mod:`~effscale.search.space`,
:mod:`~effscale.search.objectives` (reward, limits, costs), :mod:`~effscale.search.proxy`
(proxy training), :mod:`~effscale.search.zero_cost`, :mod:`~effscale.search.trial` (what one
trial does), :mod:`~effscale.search.tuner`, :mod:`~effscale.search.records` (trials.csv,
pareto.csv, results), :mod:`~effscale.search.distributed` (chief / worker),
:mod:`~effscale.search.run` (:func:`run_search`), the one-shot search
(:mod:`~effscale.search.oneshot.supernet`, :mod:`~effscale.search.oneshot.differentiable`,
:mod:`~effscale.search.oneshot.task`), tabular replay
(:mod:`~effscale.search.tabular`) and the oracles (:mod:`effscale.search.oracles`).

:func:`run_search` is the Python entry point (``effscale search`` is its command line): it takes
a :class:`SearchConfig`, which holds and validates every search option, and a project directory,
which holds everything, written atomically after every trial::

    DIR/search.json          the search's configuration (a rerun must match it) and summary
    DIR/trials.csv           one row per trial: id, status, genotype, accuracy, cost, reward, ...
    DIR/pareto.csv           the Pareto front of (accuracy, cost) over completed trials
    DIR/best_genotype.json   the best genotype (loads with ``effscale.load_genotype``)
    DIR/tuner/               Keras Tuner's oracle.json and trial_*/trial.json
    DIR/latency/             measured latencies, cached by genotype key
    DIR/prescreen.json       with ``prescreen="PROXY:N"``: every prescreen's candidates and scores

Rerunning the same call resumes: finished trials are kept, the trial that was running is run
again, and the oracle's state (population, controller, random state) is the one saved.

Distributed search uses Keras Tuner's chief / worker mode: set ``KERASTUNER_TUNER_ID`` ("chief"
or e.g. "tuner1") and ``KERASTUNER_ORACLE_PORT`` (and ``KERASTUNER_ORACLE_IP``, which defaults to
127.0.0.1, loopback) and run the same search in each process. Nothing listens on a port
unless those variables are set. The chief ends a trial FAILED when its worker has not been
heard from for ``worker_timeout`` seconds (workers send a heartbeat while they train), so a
killed worker does not stop the search.

>>> parse_target("400M")
400000000.0
>>> run_search("tiny", oracle="annealing", project_dir="unused")
Traceback (most recent call last):
...
effscale.common.errors.UserError: unknown oracle 'annealing': expected one of evolution, reinforce, random, bayesian, bayesian-sampled, predictor, asha, hyperband, differentiable
"""

from effscale.search.config import SearchConfig, parse_target
from effscale.search.distributed import serve_chief
from effscale.search.objectives import OBJECTIVE, analytic_costs, design_variant
from effscale.search.records import (CSV_FIELDS, TUNER_FOLDER, SearchResult, best_record, load_oracle, load_trials,
                                     read_results, trial_records, write_outputs)
from effscale.search.registry import ORACLES, PRESCREEN_ORACLES, make_oracle, register_oracle
from effscale.search.run import run_search
from effscale.search.space import SearchSpace
from effscale.search.trial import SearchHyperModel, TrialRunner

__all__ = ["run_search", "SearchConfig", "SearchResult", "SearchSpace", "SearchHyperModel", "TrialRunner",
           "make_oracle", "register_oracle", "ORACLES", "PRESCREEN_ORACLES", "OBJECTIVE", "parse_target",
           "design_variant", "analytic_costs", "trial_records", "best_record", "write_outputs", "load_trials",
           "read_results", "load_oracle", "serve_chief", "TUNER_FOLDER", "CSV_FIELDS"]
