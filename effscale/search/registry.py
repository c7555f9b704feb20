"""Oracle name -> factory: the one list of search strategies. Config validation, the command
line's choices and help, and :func:`make_oracle` all read it, so a new oracle is its
``keras_tuner.Oracle`` subclass plus one :func:`register_oracle` call.

>>> "evolution" in ORACLES, "annealing" in ORACLES
(True, False)
>>> list(PRESCREEN_ORACLES)
['evolution', 'random']
>>> check_oracle("annealing")
Traceback (most recent call last):
...
effscale.common.errors.UserError: unknown oracle 'annealing': expected one of evolution, reinforce, random, bayesian, bayesian-sampled, predictor, asha, hyperband, differentiable
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from effscale.common.checks import COUNT_MAX, EPOCHS_MAX, float_flag, int_flag
from effscale.common.errors import UserError
from effscale.search.objectives import OBJECTIVE

SEED_SPREAD = 100_003


@dataclass(frozen=True)
class OracleEntry:
    """One registered oracle. ``build(max_trials, common, epochs, prescreen, options)`` returns
    the oracle; ``common`` holds the keyword arguments every ``keras_tuner.Oracle`` takes
    (objective, hyperparameters, seed, ...). ``prescreen``: whether it accepts a prescreen.
    ``options``: the option names ``build`` reads, so that a misspelt one is refused before a
    search starts (None: not declared, anything is passed on). ``cost_aware``: ``build`` takes
    ``cost_fn`` and ``reward`` options, which a search fills with each candidate's exact cost
    (multiply-adds or parameters) and its reward. ``final_epochs_option``: for a multi-fidelity
    oracle, the option its top rung's epochs come from; a family sets it to its members' training
    epochs unless the config gives it. ``flags``: the ``effscale search`` flags of its options
    (:class:`OracleFlag`); the command line adds them and refuses them with another oracle.
    ``check_space(space, cost, distributed)``: raises UserError for a search it cannot run,
    checked when the config is built. ``one_shot``: a search attaches a one-shot task (a supernet
    trained on the search's data, :class:`~effscale.search.oneshot.task.OneShotTask`)."""

    name: str
    build: Callable
    summary: str
    prescreen: bool = False
    options: tuple[str, ...] | None = None
    cost_aware: bool = False
    final_epochs_option: str | None = None
    flags: tuple["OracleFlag", ...] = ()
    check_space: Callable | None = None
    one_shot: bool = False


@dataclass(frozen=True)
class OracleFlag:
    """A command-line flag of an oracle option: ``--population`` sets ``population_size``.
    ``type`` parses the flag's text (an argparse type: bad text is exit 2, one line)."""

    flag: str
    option: str
    type: Callable
    help: str


_REGISTRY: dict[str, OracleEntry] = {}


def register_oracle(name: str, build: Callable, summary: str, prescreen: bool = False,
                    options: Sequence[str] | None = None, cost_aware: bool = False, *,
                    final_epochs_option: str | None = None, flags: Sequence[OracleFlag] = (),
                    check_space: Callable | None = None, one_shot: bool = False) -> OracleEntry:
    """Add an oracle under ``name`` (replacing one of the same name) and return its entry
    (the fields are :class:`OracleEntry`'s)."""
    entry = OracleEntry(name, build, summary, prescreen, None if options is None else tuple(options), cost_aware,
                        final_epochs_option, tuple(flags), check_space, one_shot)
    _REGISTRY[name] = entry
    return entry


def oracle_entry(name: str) -> OracleEntry:
    """The registered entry of ``name`` (UserError for an unknown one).

    >>> oracle_entry("predictor").cost_aware, oracle_entry("evolution").cost_aware
    (True, False)
    """
    check_oracle(name)
    return _REGISTRY[name]


def registered_oracles() -> tuple[OracleEntry, ...]:
    """Every registered entry, in registration order."""
    return tuple(_REGISTRY.values())


def unregister_oracle(name: str) -> None:
    """Remove a registered oracle (a no-op for an unknown name)."""
    _REGISTRY.pop(name, None)


class _Names(Sequence):
    """The registered oracle names (all, or those that prescreen), read live from the registry."""

    def __init__(self, prescreen_only: bool = False):
        self._prescreen_only = prescreen_only

    def _names(self) -> tuple[str, ...]:
        return tuple(n for n, e in _REGISTRY.items() if e.prescreen or not self._prescreen_only)

    def __getitem__(self, index):
        return self._names()[index]

    def __len__(self) -> int:
        return len(self._names())

    def __repr__(self) -> str:
        return repr(self._names())


ORACLES = _Names()
PRESCREEN_ORACLES = _Names(prescreen_only=True)


def check_oracle(name, prescreen=None) -> None:
    """Raise UserError unless ``name`` is a registered oracle (that prescreens, if ``prescreen``)."""
    if name not in _REGISTRY:
        raise UserError(f"unknown oracle {name!r}: expected one of {', '.join(ORACLES)}")
    if prescreen is not None and not _REGISTRY[name].prescreen:
        raise UserError(f"oracle {name!r} does not prescreen: prescreening works with "
                        f"{', '.join(PRESCREEN_ORACLES)}")


def check_oracle_options(name, options) -> None:
    """Raise UserError when ``options`` names an option the oracle ``name`` does not read.

    >>> check_oracle_options("evolution", {"population_size": 20})
    >>> check_oracle_options("reinforce", {"population_size": 20})
    Traceback (most recent call last):
    ...
    effscale.common.errors.UserError: oracle 'reinforce' has no option 'population_size': its options are learning_rate, entropy_weight, baseline_decay, failed_reward, normalize
    """
    check_oracle(name)
    accepted = _REGISTRY[name].options
    unknown = [key for key in options if accepted is not None and key not in accepted]
    if unknown:
        known = f"its options are {', '.join(accepted)}" if accepted else "it takes none"
        raise UserError(f"oracle {name!r} has no option {unknown[0]!r}: {known}")
    check_option_values(options)


# The values an oracle option may take: (int or float, lowest, highest, lowest excluded). The
# oracles check them again when built; here they are checked before a search (or a family, whose
# search starts after its first files) writes anything.
_OPTION_VALUES = {
    "population_size": (int, 2, 1_000_000), "sample_size": (int, 1, 1_000_000),
    "learning_rate": (float, 0, None), "entropy_weight": (float, 0, None), "baseline_decay": (float, 0, 1),
    "failed_reward": (float, None, None), "num_initial_points": (int, 1, 1_000_000),
    "candidates": (int, 1, 1_000_000), "gp_restarts": (int, 0, 1_000), "alpha": (float, 0, None),
    "beta": (float, 0, None), "initial_points": (int, 2, 1_000_000), "parents": (int, 1, 1_000_000),
    "random_candidates": (int, 0, 1_000_000), "exploration": (float, 0, None), "members": (int, 2, 10_000),
    "factor": (int, 2, 1_000), "supernet_epochs": (int, 1, 100_000), "arch_learning_rate": (float, 0, None),
    "cost_weight": (float, 0, None), "warmup_epochs": (int, 0, 100_000), "temperature": (float, 0, None),
}


def check_option_values(options) -> None:
    """Raise UserError when an oracle option's value has the wrong type or range (numbers finite).

    >>> check_option_values({"population_size": 20, "learning_rate": 0.5})
    >>> check_option_values({"population_size": "abc"})
    Traceback (most recent call last):
    ...
    effscale.common.errors.UserError: oracle option population_size must be an integer in 2..1000000, got 'abc'
    """
    from effscale.common.checks import check_float, check_int, shorten

    for key, value in options.items():
        if key == "normalize":
            if not isinstance(value, bool):
                raise UserError(f"oracle option normalize must be true or false, got {shorten(value)}")
            continue
        if key not in _OPTION_VALUES:
            continue
        kind, low, high = _OPTION_VALUES[key]
        if kind is int:
            check_int(value, f"oracle option {key}", low, high)
        else:
            check_float(value, f"oracle option {key}", low, high)


def oracle_help() -> str:
    """The registered oracles, for the command line's help: 'a, b or c'."""
    names = list(ORACLES)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def make_oracle(name: str, max_trials: int, hyperparameters, seed: int = 0, epochs: int = 1, prescreen=None,
                **options):
    """A fresh oracle by name, maximizing the ``reward`` metric, with atomic state files.

    ``options`` go to the oracle: ``population_size`` / ``sample_size`` (evolution),
    ``learning_rate`` / ``entropy_weight`` / ``baseline_decay`` (reinforce),
    ``num_initial_points`` (bayesian, bayesian-sampled), ``candidates`` / ``gp_restarts`` / ``beta``
    (bayesian-sampled), ``initial_points`` / ``parents`` / ``random_candidates`` / ``exploration`` /
    ``members`` / ``cost_fn`` / ``reward`` / ``acquisition`` (predictor; asha too, with ``max_epochs``
    (default ``epochs``) / ``eta`` / ``min_epochs``), ``factor`` (hyperband), ``supernet_epochs`` /
    ``arch_learning_rate`` / ``cost_weight`` / ``warmup_epochs`` / ``temperature`` (differentiable).
    ``prescreen=(score_fn, n)`` (random and evolution only): each proposal scores n untried
    candidates with ``score_fn(list of values dicts) -> list of floats`` and proposes the
    best-scored (:mod:`effscale.search.oracles.prescreen`; the oracle's ``prescreen_log`` records them).
    """
    import keras_tuner

    check_oracle(name, prescreen)
    check_oracle_options(name, options)
    objective = keras_tuner.Objective(OBJECTIVE, "max")
    # keras-tuner treats seed 0 as "random", and its RandomSearch seeds draw k of a search with
    # seed + k, so nearby seeds give the same candidates shifted by one draw: spread them apart.
    common = dict(objective=objective, hyperparameters=hyperparameters, seed=1 + seed * SEED_SPREAD,
                  max_consecutive_failed_trials=max(3, max_trials + 1), tune_new_entries=False,
                  allow_new_entries=False)
    try:
        return _REGISTRY[name].build(max_trials, common, epochs, prescreen, options)
    except TypeError as error:
        raise UserError(f"oracle {name!r}: {error}") from None


# -- the built-in oracles ----------------------------------------------------------------------
def _evolution(max_trials, common, epochs, prescreen, options):
    from effscale.search.oracles import RegularizedEvolutionOracle

    population = options.get("population_size", max(2, min(10, max_trials // 3)))
    sample = options.get("sample_size", max(1, min(3, population // 2)))
    return RegularizedEvolutionOracle(max_trials=max_trials, population_size=population, sample_size=sample,
                                      prescreen=prescreen, **common)


def _reinforce(max_trials, common, epochs, prescreen, options):
    from effscale.search.oracles import ReinforceOracle

    return ReinforceOracle(max_trials=max_trials, **options, **common)


def _random(max_trials, common, epochs, prescreen, options):
    from effscale.search.oracles import PrescreenRandomSearchOracle, atomic_builtin_oracle

    if prescreen is not None:
        return PrescreenRandomSearchOracle(max_trials=max_trials, prescreen=prescreen, **common)
    return atomic_builtin_oracle("random")(max_trials=max_trials, **common)


def _bayesian(max_trials, common, epochs, prescreen, options):
    from effscale.search.oracles import atomic_builtin_oracle

    initial = options.get("num_initial_points", min(10, max(2, max_trials // 4)))
    return atomic_builtin_oracle("bayesian")(max_trials=max_trials, num_initial_points=initial, **common)


def _bayesian_sampled(max_trials, common, epochs, prescreen, options):
    from effscale.search.oracles import SampledBayesianOracle

    options = {"num_initial_points": min(10, max(2, max_trials // 4)), **options}
    return SampledBayesianOracle(max_trials=max_trials, **options, **common)


def _predictor(max_trials, common, epochs, prescreen, options):
    from effscale.search.oracles import PredictorOracle

    return PredictorOracle(max_trials=max_trials, **options, **common)


def _asha(max_trials, common, epochs, prescreen, options):
    from effscale.search.oracles import SuccessiveHalvingOracle

    return SuccessiveHalvingOracle(max_trials=max_trials, **{"max_epochs": max(1, epochs), **options}, **common)


def _hyperband(max_trials, common, epochs, prescreen, options):
    from effscale.search.oracles import atomic_builtin_oracle

    oracle = atomic_builtin_oracle("hyperband")(max_epochs=max(1, epochs), factor=options.get("factor", 3),
                                                hyperband_iterations=None, **common)
    oracle.max_trials = max_trials
    return oracle


def _differentiable(max_trials, common, epochs, prescreen, options):
    from effscale.search.oracles import DifferentiableOracle

    return DifferentiableOracle(max_trials=max_trials, **options, **common)


def _check_differentiable(space, cost, distributed=False):
    from effscale.search.oneshot.differentiable import check_supported

    check_supported(space, cost, distributed=distributed)


register_oracle("evolution", _evolution, "regularized evolution (Real et al., 2019)", prescreen=True,
                options=("population_size", "sample_size"),
                flags=(OracleFlag("--population", "population_size", int_flag(2, COUNT_MAX), "population size P"),
                       OracleFlag("--tournament", "sample_size", int_flag(1, COUNT_MAX), "tournament size S")))
register_oracle("reinforce", _reinforce, "REINFORCE policy gradient over the choices (MnasNet)",
                options=("learning_rate", "entropy_weight", "baseline_decay", "failed_reward", "normalize"))
register_oracle("random", _random, "uniform random search", prescreen=True, options=())
register_oracle("bayesian", _bayesian, "Keras Tuner's Gaussian-process Bayesian optimization",
                options=("num_initial_points",))
register_oracle("bayesian-sampled", _bayesian_sampled,
                "the same GP-UCB scored over sampled points, never a tried point (fast at 1,000 trials)",
                options=("num_initial_points", "candidates", "gp_restarts", "alpha", "beta"))
_PREDICTOR_OPTIONS = ("initial_points", "parents", "random_candidates", "exploration", "members", "cost_fn",
                      "reward", "acquisition")
register_oracle("predictor", _predictor, "predictor-guided local search (BANANAS-style), cost-aware",
                options=_PREDICTOR_OPTIONS, cost_aware=True)
register_oracle("asha", _asha, "multi-fidelity: successive halving over epochs up to --epochs (ASHA), new "
                "candidates from the cost-aware predictor (BOHB-style)",
                options=_PREDICTOR_OPTIONS + ("max_epochs", "eta", "min_epochs"), cost_aware=True,
                final_epochs_option="max_epochs")
register_oracle("hyperband", _hyperband, "Keras Tuner's Hyperband over proxy epochs", options=("factor",))
register_oracle("differentiable", _differentiable, "one-shot supernet search (DARTS-style)",
                options=("supernet_epochs", "arch_learning_rate", "cost_weight", "warmup_epochs", "temperature"),
                flags=(OracleFlag("--supernet-epochs", "supernet_epochs", int_flag(1, EPOCHS_MAX),
                                  "supernet training epochs (default 3)"),
                       OracleFlag("--cost-weight", "cost_weight", float_flag(0), "weight of the expected-cost term (1.0)"),
                       OracleFlag("--arch-learning-rate", "arch_learning_rate", float_flag(0, low_open=True),
                                  "Adam rate of the logits (0.01)")),
                check_space=_check_differentiable, one_shot=True)
