"""Registered baseline genotypes, from their papers and reference implementations.

>>> sorted(REGISTRY)
['efficientnet-b0', 'mnasnet-a1', 'mobilenet-v2', 'tiny']
>>> get_genotype("mobilenet-v2").activation
'relu6'
"""

from __future__ import annotations

from dataclasses import dataclass

from effscale.errors import UserError
from effscale.genotype import Genotype


@dataclass(frozen=True)
class Baseline:
    name: str
    genotype: Genotype
    source: str
    description: str


def _entry(name: str, text: str, source: str, description: str) -> Baseline:
    return Baseline(name, Genotype.parse(text), source, description)


REGISTRY: dict[str, Baseline] = {
    b.name: b
    for b in (
        _entry(
            "efficientnet-b0",
            "stem32_head1280_res224_swish"
            "-mb_r1_k3_s1_e1_c16_se0.25-mb_r2_k3_s2_e6_c24_se0.25-mb_r2_k5_s2_e6_c40_se0.25"
            "-mb_r3_k3_s2_e6_c80_se0.25-mb_r3_k5_s1_e6_c112_se0.25-mb_r4_k5_s2_e6_c192_se0.25"
            "-mb_r1_k3_s1_e6_c320_se0.25",
            "Tan & Le 2019, arXiv 1905.11946; keras.applications DEFAULT_BLOCKS_ARGS",
            "EfficientNet-B0, searched in the MnasNet space; the root of the published B0..B7 family",
        ),
        _entry(
            "mnasnet-a1",
            "stem32_head1280_res224_relu"
            "-mb_r1_k3_s1_e1_c16_noskip-mb_r2_k3_s2_e6_c24-mb_r3_k5_s2_e3_c40_se0.25"
            "-mb_r4_k3_s2_e6_c80-mb_r2_k3_s1_e6_c112_se0.25-mb_r3_k5_s2_e6_c160_se0.25"
            "-mb_r1_k3_s1_e6_c320",
            "Tan et al. 2019, arXiv 1807.11626; tensorflow/tpu mnasnet_a1",
            "MnasNet-A1: 3.9M parameters, 312M multiply-adds, 75.2% ImageNet top-1",
        ),
        _entry(
            "mobilenet-v2",
            "stem32_head1280_res224_relu6"
            "-mb_r1_k3_s1_e1_c16-mb_r2_k3_s2_e6_c24-mb_r3_k3_s2_e6_c32-mb_r4_k3_s2_e6_c64"
            "-mb_r3_k3_s1_e6_c96-mb_r3_k3_s2_e6_c160-mb_r1_k3_s1_e6_c320",
            "Sandler et al. 2018, arXiv 1801.04381; keras.applications MobileNetV2",
            "MobileNetV2 (width 1.0): inverted residuals with linear bottlenecks",
        ),
        _entry(
            "tiny",
            "stem16_head128_res32_swish"
            "-mb_r1_k3_s1_e1_c16_se0.25-mb_r1_k3_s2_e4_c24_se0.25-mb_r2_k5_s2_e4_c40_se0.25"
            "-mb_r1_k3_s1_e4_c64_se0.25",
            "effscale",
            "A small MBConv net for 32 px inputs (digits, CIFAR): fast proxy searches and demos",
        ),
    )
}


def get_genotype(name: str) -> Genotype:
    """The genotype of a registered baseline; UserError lists the known names."""
    try:
        return REGISTRY[name].genotype
    except KeyError:
        raise UserError(f"unknown baseline {name!r}: expected one of {', '.join(REGISTRY)}") from None
