"""effscale: neural architecture search into whole model families, for Keras.

>>> import effscale
>>> effscale.Genotype.parse(effscale.get_genotype("tiny").encode()) == effscale.get_genotype("tiny")
True
"""

from effscale.model.builder import ModelOptions, build
from effscale.common.errors import UserError
from effscale.family.pipeline import run_family
from effscale.model.genotype import Genotype, Stage
from effscale.model.zoo import load_genotype
from effscale.model.scaling import Variant
from effscale.model.variants import resolve_family, resolve_variant
from effscale.model.weights import load_weights
from effscale.model.zoo import REGISTRY, get_genotype

__version__ = "0.1.0"

__all__ = ["build", "ModelOptions", "Genotype", "Stage", "Variant", "UserError", "load_genotype", "get_genotype",
           "resolve_variant", "resolve_family", "REGISTRY", "load_weights", "run_family", "__version__"]
