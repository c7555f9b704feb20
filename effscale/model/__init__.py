"""The model stage: a genotype (a network as plain values) -> a scaled variant -> a Keras model and its costs.

>>> from effscale.model.zoo import get_genotype
>>> get_genotype("tiny").stages[0].block
'mbconv'
"""
