"""Search strategies, each a ``keras_tuner.Oracle`` subclass in its own module.

>>> sorted(n for n in __all__ if n.endswith("Oracle"))
['DifferentiableOracle', 'PrescreenRandomSearchOracle', 'RegularizedEvolutionOracle', 'ReinforceOracle']
"""

from effscale.search.oracles.base import AtomicStateMixin, atomic_builtin_oracle
from effscale.search.oracles.differentiable import DifferentiableOracle
from effscale.search.oracles.evolution import RegularizedEvolutionOracle
from effscale.search.oracles.prescreen import PrescreenMixin, PrescreenRandomSearchOracle
from effscale.search.oracles.reinforce import ReinforceOracle

__all__ = ["AtomicStateMixin", "atomic_builtin_oracle", "RegularizedEvolutionOracle", "ReinforceOracle",
           "DifferentiableOracle", "PrescreenMixin", "PrescreenRandomSearchOracle"]
