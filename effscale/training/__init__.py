"""The training stage: recipe, tf.distribute strategy, resumable training, evaluation, fine-tuning.

>>> from effscale.training import train_variant
>>> callable(train_variant)
True
"""

from effscale.training.train import train_variant

__all__ = ["train_variant"]
