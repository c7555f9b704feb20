"""Registered baseline genotypes, from their papers and reference implementations.

>>> sorted(REGISTRY)  # doctest: +NORMALIZE_WHITESPACE
['efficientnet-b0', 'efficientnetv2-b0', 'efficientnetv2-l', 'efficientnetv2-m', 'efficientnetv2-s',
 'mnasnet-a1', 'mobilenet-v2', 'tiny']
>>> get_genotype("mobilenet-v2").activation
'relu6'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from effscale.common.errors import UserError
from effscale.model.genotype import Genotype
from effscale.model.scaling import published_table


@dataclass(frozen=True)
class Baseline:
    name: str
    genotype: Genotype
    source: str
    description: str


def _entry(name: str, text: str, source: str, description: str) -> Baseline:
    return Baseline(name, Genotype.parse(text), source, description)


_V2_SOURCE = "Tan & Le 2021, arXiv 2104.00298; keras.applications efficientnet_v2.py DEFAULT_BLOCKS_ARGS"

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
            "efficientnetv2-b0",
            "stem32_head1280_res224_swish_v2"
            "-fmb_r1_k3_s1_e1_c16-fmb_r2_k3_s2_e4_c32-fmb_r2_k3_s2_e4_c48"
            "-mb_r3_k3_s2_e4_c96_se0.25-mb_r5_k3_s1_e6_c112_se0.25-mb_r8_k3_s2_e6_c192_se0.25",
            _V2_SOURCE,
            "EfficientNetV2-B0: Fused-MBConv early, MBConv with SE late; the root of V2's B0..B3 "
            "(variants b0..b3)",
        ),
        _entry(
            "efficientnetv2-s",
            "stem24_head1280_res384_swish_v2_signed"
            "-fmb_r2_k3_s1_e1_c24-fmb_r4_k3_s2_e4_c48-fmb_r4_k3_s2_e4_c64"
            "-mb_r6_k3_s2_e4_c128_se0.25-mb_r9_k3_s1_e6_c160_se0.25-mb_r15_k3_s2_e6_c256_se0.25",
            _V2_SOURCE,
            "EfficientNetV2-S: 22M parameters, 8.8B FLOPs, 83.9% ImageNet top-1 (paper Table 7)",
        ),
        _entry(
            "efficientnetv2-m",
            "stem24_head1280_res480_swish_v2_signed"
            "-fmb_r3_k3_s1_e1_c24-fmb_r5_k3_s2_e4_c48-fmb_r5_k3_s2_e4_c80"
            "-mb_r7_k3_s2_e4_c160_se0.25-mb_r14_k3_s1_e6_c176_se0.25-mb_r18_k3_s2_e6_c304_se0.25"
            "-mb_r5_k3_s1_e6_c512_se0.25",
            _V2_SOURCE,
            "EfficientNetV2-M: 54M parameters, 24B FLOPs, 85.1% ImageNet top-1 (paper Table 7)",
        ),
        _entry(
            "efficientnetv2-l",
            "stem32_head1280_res480_swish_v2_signed"
            "-fmb_r4_k3_s1_e1_c32-fmb_r7_k3_s2_e4_c64-fmb_r7_k3_s2_e4_c96"
            "-mb_r10_k3_s2_e4_c192_se0.25-mb_r19_k3_s1_e6_c224_se0.25-mb_r25_k3_s2_e6_c384_se0.25"
            "-mb_r7_k3_s1_e6_c640_se0.25",
            _V2_SOURCE,
            "EfficientNetV2-L: 120M parameters, 53B FLOPs, 85.7% ImageNet top-1 (paper Table 7)",
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


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise UserError(message)


def _is_file(text: str) -> bool:
    """Whether ``text`` names an existing file; False for text no file system takes as a name
    (a genotype string longer than a file name may be: OSError "File name too long")."""
    try:
        return Path(text).is_file()
    except (OSError, ValueError):
        return False


def load_genotype(source: "str | Genotype | Path") -> Genotype:
    """A Genotype from a registered name, a genotype string, or a JSON file path.

    >>> load_genotype("mnasnet-a1").activation
    'relu'
    """
    if isinstance(source, Genotype):
        return source
    text = str(source).strip()
    _require(text != "", "empty genotype: expected a registered name, a genotype string or a JSON file")
    if text in REGISTRY:
        return REGISTRY[text].genotype
    if text.endswith(".json") or _is_file(text):
        path = Path(text)
        _require(path.is_file(), f"genotype file {text!r} does not exist")
        data = path.read_text()
        if data.lstrip().startswith("{"):
            return Genotype.from_json(data)
        return Genotype.parse(data)
    member = re.match(r"^(efficientnet(?:v2)?)-(b\d)$", text)
    if member and f"{member.group(1)}-b0" in REGISTRY:
        base = REGISTRY[f"{member.group(1)}-b0"].genotype
        if member.group(2) in published_table(base):
            raise UserError(f"{text!r} is genotype {member.group(1)}-b0 at variant {member.group(2)}: "
                            f"give the genotype {member.group(1)}-b0 and the variant {member.group(2)}")
    if "_" not in text:
        raise UserError(f"unknown genotype {text!r}: expected a registered name ({', '.join(REGISTRY)}), "
                        "a genotype string or a JSON file")
    return Genotype.parse(text)
