"""Search strategies, each a ``keras_tuner.Oracle`` subclass in its own module.

>>> sorted(n for n in __all__ if n.endswith("Oracle"))
['DifferentiableOracle', 'PredictorOracle', 'PrescreenRandomSearchOracle', 'RegularizedEvolutionOracle', 'ReinforceOracle', 'SampledBayesianOracle', 'SuccessiveHalvingOracle']
"""

from effscale.search.oracles.base import AtomicStateMixin, atomic_builtin_oracle
from effscale.search.oracles.bayesian import SampledBayesianOracle
from effscale.search.oracles.differentiable import DifferentiableOracle
from effscale.search.oracles.evolution import RegularizedEvolutionOracle
from effscale.search.oracles.halving import SuccessiveHalvingOracle
from effscale.search.oracles.predictor import PredictorOracle, RewardModel
from effscale.search.oracles.prescreen import PredictedReward, PrescreenMixin, PrescreenRandomSearchOracle
from effscale.search.oracles.reinforce import ReinforceOracle

__all__ = ["AtomicStateMixin", "atomic_builtin_oracle", "RegularizedEvolutionOracle", "ReinforceOracle",
           "DifferentiableOracle", "SampledBayesianOracle", "PredictorOracle", "RewardModel", "PredictedReward",
           "PrescreenMixin", "PrescreenRandomSearchOracle", "SuccessiveHalvingOracle"]
