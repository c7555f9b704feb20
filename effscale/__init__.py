"""effscale: neural architecture search into whole model families, for Keras.

>>> import effscale
>>> effscale.Genotype.parse(effscale.get_genotype("tiny").encode()) == effscale.get_genotype("tiny")
True
"""

from effscale.builder import build
from effscale.errors import UserError
from effscale.family import run_family
from effscale.genotype import Genotype, Stage
from effscale.zoo import load_genotype
from effscale.scaling import Variant
from effscale.variants import resolve_family, resolve_variant
from effscale.weights import load_weights
from effscale.zoo import REGISTRY, get_genotype

__version__ = "0.1.0"

__all__ = ["build", "Genotype", "Stage", "Variant", "UserError", "load_genotype", "get_genotype",
           "resolve_variant", "resolve_family", "REGISTRY", "load_weights", "run_family", "__version__"]
