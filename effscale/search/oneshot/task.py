"""The one-shot search's wiring: :func:`attach` gives a
:class:`~effscale.search.oracles.DifferentiableOracle` its supernet search
(:func:`~effscale.search.oneshot.differentiable.run_differentiable_search`) from a :class:`OneShotTask`,
plain values that :func:`~effscale.search.run_search` takes from its resolved config; the trial
runner stays the tuner's."""

from __future__ import annotations

from dataclasses import dataclass

from effscale.search.objectives import Reward
from effscale.search.proxy import ProxySettings
from effscale.search.space import SearchSpace


@dataclass(frozen=True)
class OneShotTask:
    """What a one-shot search needs, as values."""

    space: SearchSpace
    reward: Reward
    variant: object               # the proxy Variant (or its spelling, e.g. "w=0.5,d=1,r=16")
    settings: ProxySettings       # the proxy training's batch size, optimizer, ...
    data: object                  # () -> the search's effscale.data.pipeline.Data, loaded on first call
    directory: str                # the supernet's state: checkpoint, logits
    seed: int = 0


def attach(oracle, task: OneShotTask, verbose: int = 0, stream=None) -> None:
    """Give ``oracle`` the supernet search of ``task``; it runs when the first trial is asked for.

    >>> import tempfile, keras_tuner
    >>> from effscale.data import DataSpec, load_data
    >>> from effscale.search.oracles import DifferentiableOracle
    >>> space = SearchSpace("tiny", open=("kernel",), stages=(2,))
    >>> oracle = DifferentiableOracle(objective=keras_tuner.Objective("reward", "max"), max_trials=1,
    ...                               hyperparameters=space.hyperparameters(), supernet_epochs=1)
    >>> attach(oracle, OneShotTask(space, Reward("macs", 2e6), "w=0.25,d=1,r=8", ProxySettings(),
    ...                            lambda: load_data(DataSpec("digits", resolution=8)), tempfile.mkdtemp()))
    >>> list(oracle.populate_space("0")["values"])  # one supernet epoch on digits at 8 px
    ['stage2/kernel']
    """
    from effscale.search.oneshot.differentiable import SupernetOptions, run_differentiable_search

    def search(options: dict, k: int) -> list[dict]:
        result = run_differentiable_search(task.space, task.data(), task.variant, task.reward,
                                           SupernetOptions(**options), directory=task.directory, seed=task.seed,
                                           settings=task.settings, verbose=verbose, stream=stream)
        return result.top_values(k)

    oracle.search_fn = search
