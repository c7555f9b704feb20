"""The resolved plan of a scaled network: every block with its real channel counts.

Both the Keras builder and the analytic cost model walk this one plan, so a cost number
always describes exactly the model that :func:`effscale.build` returns.

>>> from effscale.model.zoo import get_genotype
>>> from effscale.model.variants import resolve_variant
>>> p = network_plan(get_genotype("efficientnet-b0"), resolve_variant("b2", get_genotype("efficientnet-b0")))
>>> p.stem_filters, p.head_filters, len(p.blocks), p.blocks[0].name
(32, 1408, 23, 'block1a')
"""

from __future__ import annotations

from dataclasses import dataclass

from effscale.model.block_types import block_type
from effscale.model.conventions import CONVENTIONS
from effscale.model.genotype import ACTIVATIONS, Genotype
from effscale.model.limits import check_blocks
from effscale.model.scaling import Variant, round_filters, round_repeats

DEFAULT_DROP_CONNECT = 0.2


@dataclass(frozen=True)
class BlockPlan:
    name: str            # keras.applications-style prefix, e.g. "block2a"
    block: str           # a block type's name (effscale.model.block_types): mbconv | fused | dsconv | ...
    kernel: int
    stride: int
    filters_in: int
    filters_out: int
    expanded: int        # channels after the expansion (== filters_in when expand is 1)
    se_filters: int      # 0 when the block has no squeeze-and-excitation
    activation: str      # keras activation name
    residual: bool       # identity shortcut present
    drop_rate: float     # drop-connect rate on the residual branch
    convention: str = "v1"  # effscale.model.conventions: padding and layer names

    @property
    def has_expansion(self) -> bool:
        return self.expanded != self.filters_in


@dataclass(frozen=True)
class NetworkPlan:
    resolution: int
    stem_filters: int
    blocks: tuple[BlockPlan, ...]
    head_filters: int
    activation: str      # keras activation name of stem and head
    stage_repeats: tuple[int, ...]
    convention: str = "v1"
    inputs: str = "imagenet"


def block_letters(index: int) -> str:
    """'a'..'z', then 'aa', 'ab', ... for stages deeper than 26 blocks."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(97 + rest) + letters
    return letters


def network_plan(genotype: Genotype, variant: Variant, drop_connect: float = DEFAULT_DROP_CONNECT) -> NetworkPlan:
    width, depth = variant.width, variant.depth
    convention = CONVENTIONS[genotype.convention]
    guard = convention.filter_round_up_guard
    repeats = tuple(round_repeats(stage.repeats, depth) for stage in genotype.stages)
    check_blocks(sum(repeats), f"{genotype.key} at {variant.name}")
    total = float(sum(s.repeats for s in genotype.stages) if convention.drop_rate_over_unscaled_depth else sum(repeats))
    stem = round_filters(genotype.stem, width, guard=guard)
    blocks = []
    filters_in = stem
    index = 0
    for stage_number, (stage, count) in enumerate(zip(genotype.stages, repeats), start=1):
        filters_out = round_filters(stage.filters, width, guard=guard)
        activation = ACTIVATIONS[stage.activation or genotype.activation]
        expand = stage.expand if block_type(stage.block).expands else 1
        for j in range(count):
            stride = stage.stride if j == 0 else 1
            blocks.append(BlockPlan(
                name=f"block{stage_number}{block_letters(j)}",
                block=stage.block,
                kernel=stage.kernel,
                stride=stride,
                filters_in=filters_in,
                filters_out=filters_out,
                expanded=int(round(filters_in * expand)),
                se_filters=max(1, int(filters_in * stage.se)) if stage.se > 0 else 0,
                activation=activation,
                residual=stage.skip and stride == 1 and filters_in == filters_out,
                drop_rate=drop_connect * index / total,
                convention=genotype.convention,
            ))
            filters_in = filters_out
            index += 1
    return NetworkPlan(
        resolution=variant.resolution,
        stem_filters=stem,
        blocks=tuple(blocks),
        head_filters=round_filters(genotype.head, width, guard=guard),
        activation=ACTIVATIONS[genotype.activation],
        stage_repeats=repeats,
        convention=genotype.convention,
        inputs=genotype.inputs,
    )
