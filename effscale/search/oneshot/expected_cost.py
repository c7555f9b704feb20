"""The exact expected cost of a factorized distribution over a search space (one-shot search).

Each hyperparameter of a :class:`~effscale.search.space.SearchSpace` has its own probability
vector and the factors are independent. A network's cost is a sum over its stages, and a stage's
cost depends on its own choices and, through its input width, on the previous stage's filters
only; so with ``v_s`` a stage's values, ``f`` the previous stage's filters and ``ref`` the
reference's values::

    cost(v) = cost(ref) + sum_s G_s(f, v_s)
    G_s(f, v_s) = cost(ref with f and v_s) - cost(ref with f)    (f fixed when the filters are closed)

(telescoping: G_s is what stage s's choices add, head included, at input width f), and

    E[cost] = cost(ref) + sum_s sum_(f, v_s) P(f) P(v_s) G_s(f, v_s)

with P the product of the factor probabilities. :class:`CostTable` precomputes every G_s with
:func:`effscale.model.cost.cost` at the design variant (as every oracle counts cost), so E[cost] is
exact, also with filters and block open, and differentiable in the probabilities.

>>> from effscale.search.space import SearchSpace
>>> table = CostTable(SearchSpace("tiny", open=("kernel",), stages=(3,)), classes=10, kind="macs")
>>> table.names, int(table.reference)
(['stage3/kernel'], 1556224)
>>> int(table.expected({"stage3/kernel": [0.0, 1.0]}))  # kernel 5 = the reference
1556224
>>> table.expected({"stage3/kernel": [0.5, 0.5]}) < table.reference  # half on kernel 3: cheaper
True
"""

from __future__ import annotations

import numpy as np

from effscale.search.space import SearchSpace


class CostTable:
    """Exact expected cost of the factorized distribution over ``space`` (see the module docstring).

    ``kind``: "macs" or "params" (:func:`effscale.search.objectives.analytic_costs`).
    ``stages``: one ``(axis names, grid)`` per stage with choices, the previous stage's filters
    first when they are searched."""

    def __init__(self, space: SearchSpace, classes: int, kind: str = "macs"):
        from effscale.search.objectives import analytic_costs

        self.kind = kind
        base = space.default_values()
        known: dict = {}

        def cost_of(values: dict) -> float:
            genotype = space.to_genotype(values)
            if genotype.key not in known:  # inactive choices repeat genotypes
                known[genotype.key] = analytic_costs(genotype, classes)[kind]
            return known[genotype.key]

        self.reference = cost_of(base)
        self.names: list[str] = []
        self.stages: list[tuple[list[str], np.ndarray]] = []
        for number in space.stages:
            own = [n for n in space.names if n.startswith(f"stage{number}/")]
            if not own:
                continue
            previous = f"stage{number - 1}/filters"
            axes = ([previous] if previous in space.names else []) + own
            grid = np.zeros([len(space.choices(n)) for n in axes])
            for index in np.ndindex(grid.shape):
                values = dict(base, **{n: space.choices(n)[i] for n, i in zip(axes, index)})
                start = dict(base, **{n: values[n] for n in axes if n not in own})
                grid[index] = cost_of(values) - cost_of(start)
            self.stages.append((axes, grid))
            self.names.extend(own)

    def expected(self, probabilities: dict):
        """E[cost] under ``probabilities`` (name -> vector; numpy or TensorFlow, differentiable).

        >>> space = SearchSpace("tiny", open=("filters",), stages=(2, 3))
        >>> table = CostTable(space, classes=10)
        >>> table.expected({"stage2/filters": [1, 0], "stage3/filters": [0, 1, 0]}) == table.reference
        True
        """
        if not self.stages:
            return self.reference
        if not all(isinstance(p, (list, tuple, np.ndarray)) for p in probabilities.values()):
            import tensorflow as tf

            total = tf.constant(self.reference, tf.float32)
            for names, grid in self.stages:
                t = tf.constant(grid, tf.float32)
                for name in names:  # contract the leading axis with that factor's probabilities
                    t = tf.tensordot(tf.cast(probabilities[name], tf.float32), t, axes=[[0], [0]])
                total = total + t
            return total
        total = float(self.reference)
        for names, grid in self.stages:
            t = grid
            for name in names:
                t = np.tensordot(np.asarray(probabilities[name], float), t, axes=([0], [0]))
            total += float(t)
        return total
