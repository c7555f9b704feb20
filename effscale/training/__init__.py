"""The training stage: recipe, tf.distribute strategy, resumable training, evaluation, fine-tuning.

>>> from effscale.training import Execution, Recipe, train_variant
>>> Recipe(epochs=2).epochs, Execution("default").loop
(2, 'auto')
"""

from effscale.training.recipe import Recipe
from effscale.training.strategy import Execution
from effscale.training.train import train_variant

__all__ = ["Execution", "Recipe", "train_variant"]
