"""Search strategies, each a ``keras_tuner.Oracle`` subclass in its own module.

>>> sorted(ORACLES)
['bayesian', 'bayesian-sampled', 'differentiable', 'evolution', 'hyperband', 'predictor', 'random', 'reinforce']
"""

from effscale.oracles.bayesian import SampledBayesianOracle
from effscale.oracles.base import AtomicStateMixin, atomic_builtin_oracle
from effscale.oracles.differentiable import DifferentiableOracle
from effscale.oracles.evolution import RegularizedEvolutionOracle
from effscale.oracles.predictor import PredictorOracle, RewardModel
from effscale.oracles.prescreen import PrescreenMixin, PrescreenRandomSearchOracle
from effscale.oracles.reinforce import ReinforceOracle

ORACLES = ("evolution", "reinforce", "random", "bayesian", "hyperband", "differentiable", "predictor",
           "bayesian-sampled")

__all__ = ["AtomicStateMixin", "atomic_builtin_oracle", "RegularizedEvolutionOracle", "ReinforceOracle",
           "DifferentiableOracle", "SampledBayesianOracle", "PredictorOracle", "RewardModel", "ORACLES",
           "PrescreenMixin", "PrescreenRandomSearchOracle"]
