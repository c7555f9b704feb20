"""Human-readable and JSON descriptions of a scaled genotype or a family.

>>> from effscale.model.zoo import get_genotype
>>> from effscale.model.variants import resolve_variant
>>> g = get_genotype("efficientnet-b0")
>>> print(describe_variant(g, resolve_variant("b0", g)).splitlines()[-1])
parameters 5,330,571 (trainable 5,288,548)  multiply-adds 0.386 G  resolution 224
"""

from __future__ import annotations

import json

from effscale.model.cost import plan_cost
from effscale.model.genotype import Genotype
from effscale.model.plan import network_plan
from effscale.model.scaling import Variant


def format_table(headers: list[str], rows: list[list]) -> str:
    """A plain aligned text table.

    >>> print(format_table(["a", "bb"], [[1, 2], [30, 4]]))
    a   bb
    1    2
    30   4
    """
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
    return "\n".join(line.rstrip() for line in lines)


def stage_rows(genotype: Genotype, variant: Variant) -> list[dict]:
    """One record per stage after scaling: what the builder will make."""
    plan = network_plan(genotype, variant)
    size = -(-plan.resolution // 2)
    rows, start = [], 0
    for number, (stage, repeats) in enumerate(zip(genotype.stages, plan.stage_repeats), start=1):
        blocks = plan.blocks[start:start + repeats]
        start += repeats
        size = -(-size // stage.stride)
        rows.append({"stage": number, "block": stage.block, "kernel": stage.kernel, "stride": stage.stride,
                     "expand": stage.expand, "se": stage.se, "skip": stage.skip, "repeats": repeats,
                     "filters_in": blocks[0].filters_in, "filters_out": blocks[0].filters_out,
                     "output_size": size})
    return rows


def describe_variant(genotype: Genotype, variant: Variant, classes: int = 1000, as_json: bool = False) -> str:
    plan = network_plan(genotype, variant)
    cost = plan_cost(plan, classes)
    rows = stage_rows(genotype, variant)
    if as_json:
        return json.dumps({"genotype": genotype.encode(), "key": genotype.key, "variant": variant.to_dict(),
                           "stem_filters": plan.stem_filters, "head_filters": plan.head_filters,
                           "stages": rows, "cost": cost.to_dict()}, indent=2)
    table = format_table(
        ["stage", "block", "k", "s", "expand", "se", "skip", "repeats", "filters", "out px"],
        [[r["stage"], r["block"], r["kernel"], r["stride"], f"{r['expand']:g}", f"{r['se']:g}",
          "yes" if r["skip"] else "no", r["repeats"], f"{r['filters_in']}->{r['filters_out']}", r["output_size"]]
         for r in rows])
    return "\n".join([
        f"genotype {genotype.key}  variant {variant.name}: width {variant.width:g}, depth {variant.depth:g}, "
        f"resolution {variant.resolution}, dropout {variant.dropout:g}",
        f"stem {plan.stem_filters} filters, head {plan.head_filters} filters, {len(plan.blocks)} blocks",
        table,
        f"parameters {cost.parameters:,} (trainable {cost.trainable_parameters:,})  "
        f"multiply-adds {cost.multiply_adds / 1e9:.3f} G  resolution {cost.resolution}",
    ])


def describe_family(genotype: Genotype, variants: list[Variant], classes: int = 1000, as_json: bool = False) -> str:
    records = []
    for variant in variants:
        plan = network_plan(genotype, variant)
        records.append({"variant": variant.to_dict(), "blocks": len(plan.blocks),
                        "cost": plan_cost(plan, classes).to_dict()})
    if as_json:
        return json.dumps({"genotype": genotype.encode(), "key": genotype.key, "family": records}, indent=2)
    return f"genotype {genotype.key}\n" + format_table(
        ["variant", "width", "depth", "resolution", "blocks", "parameters", "multiply-adds"],
        [[r["variant"]["name"], f"{r['variant']['width']:g}", f"{r['variant']['depth']:g}",
          r["variant"]["resolution"], r["blocks"], f"{r['cost']['parameters']:,}",
          f"{r['cost']['multiply_adds'] / 1e9:.3f} G"] for r in records])
