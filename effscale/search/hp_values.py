"""Values over any Keras Tuner ``HyperParameters`` with finite choices: the choices of one
hyperparameter, uniform sampling, one-choice mutation, neighbourhoods and the size of a space.

Plain functions of a numpy Generator, so the oracles that use them test without a tuner.
:class:`effscale.search.space.SearchSpace` declares the effscale space on a ``HyperParameters``.

>>> import keras_tuner
>>> import numpy as np
>>> hp = keras_tuner.HyperParameters()
>>> hp.Choice("kernel", [3, 5]), hp.Boolean("skip")
(3, False)
>>> space_size(hp), sorted(sample_values(hp, np.random.default_rng(0)))
(4, ['kernel', 'skip'])
"""

from __future__ import annotations

from collections.abc import Mapping

from effscale.common.errors import UserError


def discrete_values(hp) -> tuple:
    """The finite list of values of a Keras Tuner hyperparameter (Choice, Boolean, Fixed, Int).

    Raises UserError for a Float or an unbounded Int: the effscale oracles search finite spaces.
    """
    kind = type(hp).__name__
    if kind == "Choice":
        return tuple(hp.values)
    if kind == "Boolean":
        return (True, False)
    if kind == "Fixed":
        return (hp.value,)
    if kind == "Int" and getattr(hp, "sampling", "linear") in (None, "linear"):
        step = hp.step or 1
        return tuple(range(hp.min_value, hp.max_value + 1, step))
    raise UserError(f"hyperparameter {hp.name!r} ({kind}): the effscale oracles need finite "
                    "choices (Choice, Boolean, Fixed or linear Int)")


def _active(hp, values: Mapping) -> bool:
    return all(condition.is_active(values) for condition in hp.conditions)


def sample_values(hyperparameters, rng, pick=None) -> dict:
    """Values for every active hyperparameter, in declaration order so that parents are set
    before the choices that depend on them. ``pick(hp, choices, rng)`` returns one of
    ``choices``; the default is uniform."""
    values: dict = {}
    for hp in hyperparameters.space:
        if not _active(hp, values):
            continue
        choices = discrete_values(hp)
        values[hp.name] = pick(hp, choices, rng) if pick else choices[int(rng.integers(len(choices)))]
    return values


def mutate_values(hyperparameters, values: Mapping, rng) -> dict:
    """Change exactly one active choice of ``values`` to a different value (uniformly), then
    fill choices that became active with random values and drop those that became inactive
    (Real et al. 2019 mutate one choice of the parent).

    >>> import numpy as np
    >>> from effscale.search.space import SearchSpace
    >>> space = SearchSpace("tiny", open=("kernel", "se"))
    >>> parent = space.default_values()
    >>> child = mutate_values(space.hyperparameters(), parent, np.random.default_rng(1))
    >>> sum(parent[k] != child[k] for k in parent)
    1
    """
    mutable = [hp for hp in hyperparameters.space
               if _active(hp, values) and len(discrete_values(hp)) > 1]
    child = dict(values)
    if not mutable:
        return child
    hp = mutable[int(rng.integers(len(mutable)))]
    others = _others(hp, values.get(hp.name))
    child[hp.name] = others[int(rng.integers(len(others)))]
    return _settle(hyperparameters, child, rng)


def neighbours(hyperparameters, values: Mapping, rng) -> list[dict]:
    """Every one-choice mutation of ``values`` (each active choice set to each of its other
    values; choices that become active get random values), the neighbourhood a local search
    explores.

    >>> import numpy as np
    >>> from effscale.search.space import SearchSpace
    >>> space = SearchSpace("tiny", open=("kernel",), stages=(1, 2))
    >>> [sorted(n.values()) for n in neighbours(space.hyperparameters(), space.default_values(), np.random.default_rng(0))]
    [[3, 5], [3, 5]]
    """
    out = []
    for hp in hyperparameters.space:
        if not _active(hp, values):
            continue
        for value in _others(hp, values.get(hp.name)):
            out.append(_settle(hyperparameters, dict(values, **{hp.name: value}), rng))
    return out


def _others(hp, value) -> list:
    return [v for v in discrete_values(hp) if not (v == value and isinstance(v, bool) == isinstance(value, bool))]


def _settle(hyperparameters, child: Mapping, rng) -> dict:
    """``child`` with the choices it made inactive dropped and those it made active drawn."""
    fixed: dict = {}
    for item in hyperparameters.space:
        if not _active(item, fixed):
            continue
        if item.name in child:
            fixed[item.name] = child[item.name]
        else:
            choices = discrete_values(item)
            fixed[item.name] = choices[int(rng.integers(len(choices)))]
    return fixed


def space_size(hyperparameters) -> int:
    """Number of distinct active-value assignments of a Keras Tuner space (brute force over
    conditional parents; fine for the small spaces of tests)."""
    return sum(1 for _ in _enumerate(list(hyperparameters.space), {}))


def _enumerate(items, values):
    if not items:
        yield dict(values)
        return
    hp, rest = items[0], items[1:]
    if not _active(hp, values):
        yield from _enumerate(rest, values)
        return
    for value in discrete_values(hp):
        values[hp.name] = value
        yield from _enumerate(rest, values)
        del values[hp.name]
