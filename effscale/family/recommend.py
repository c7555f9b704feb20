"""Which family member to ship: accuracy intervals, Pareto efficiency, accuracy bought per extra
multiply-add, and a plain recommendation.

A member trained once has no spread over seeds, so its accuracy carries the binomial noise of
the finite evaluation set: :func:`accuracy_interval` gives the Wilson 95% score interval
(Wilson 1927; the interval statsmodels' ``proportion_confint(method="wilson")`` gives). With
several seeds the interval is the mean's 95% t-interval instead.

The recommendation looks at the validation split only (the test split selects nothing): the
best member is the one with the highest validation top-1, and the recommended member is the
cheapest (fewest multiply-adds) whose validation interval overlaps the best's: any accuracy it
gives up is inside the noise of the measurement.

>>> members = [{"name": "phi0", "multiply_adds": 1e6, "validation_top1": 0.960, "validation_examples": 360},
...            {"name": "phi1", "multiply_adds": 2e6, "validation_top1": 0.972, "validation_examples": 360},
...            {"name": "phi2", "multiply_adds": 4e6, "validation_top1": 0.975, "validation_examples": 360}]
>>> choice = recommend(members)
>>> choice["name"], choice["best"], choice["within_noise"]
('phi0', 'phi2', ['phi0', 'phi1', 'phi2'])
"""

from __future__ import annotations

import math
import statistics

Z95 = 1.959963984540054  # two-sided 95% quantile of the standard normal


def accuracy_interval(accuracy: float, examples: int | None, seeds: list[float] | None = None) -> tuple[float, float]:
    """95% interval of an accuracy: Wilson's for one evaluation of ``examples`` images, or the
    t-interval of the mean when ``seeds`` holds one accuracy per seed (two or more).

    >>> low, high = accuracy_interval(0.9, 100)
    >>> round(low, 4), round(high, 4)
    (0.8256, 0.9448)
    >>> accuracy_interval(1.0, 50)[1]
    1.0
    """
    if seeds is not None and len(seeds) >= 2:
        from scipy import stats

        mean = statistics.fmean(seeds)
        half = stats.t.ppf(0.975, len(seeds) - 1) * statistics.stdev(seeds) / math.sqrt(len(seeds))
        return max(0.0, mean - half), min(1.0, mean + half)
    if not examples:
        return accuracy, accuracy
    n = float(examples)
    centre = (accuracy + Z95 ** 2 / (2 * n)) / (1 + Z95 ** 2 / n)
    half = Z95 / (1 + Z95 ** 2 / n) * math.sqrt(accuracy * (1 - accuracy) / n + Z95 ** 2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def split_interval(member: dict, split: str) -> tuple[float, float] | None:
    """The 95% interval of ``member``'s ``split`` top-1 (``split`` is 'test' or 'validation')."""
    accuracy = member.get(f"{split}_top1")
    if accuracy is None:
        return None
    return accuracy_interval(accuracy, member.get(f"{split}_examples"), member.get(f"{split}_top1_seeds"))


def pareto_efficient(members: list[dict], split: str = "test") -> set[str]:
    """Names of the members no other member beats on both accuracy and multiply-adds.

    >>> sorted(pareto_efficient([{"name": "a", "multiply_adds": 1, "test_top1": 0.9},
    ...                          {"name": "b", "multiply_adds": 2, "test_top1": 0.8},
    ...                          {"name": "c", "multiply_adds": 3, "test_top1": 0.95}]))
    ['a', 'c']
    """
    key = f"{split}_top1"
    done = [m for m in members if m.get(key) is not None and m.get("multiply_adds") is not None]
    efficient = set()
    for member in done:
        dominated = any(other["multiply_adds"] <= member["multiply_adds"] and other[key] >= member[key]
                        and (other["multiply_adds"] < member["multiply_adds"] or other[key] > member[key])
                        for other in done)
        if not dominated:
            efficient.add(member["name"])
    return efficient


def gain_per_extra_macs(members: list[dict], split: str = "test") -> dict[str, float | None]:
    """Percentage points of top-1 per extra million multiply-adds, against the next cheaper member.

    >>> gain_per_extra_macs([{"name": "a", "multiply_adds": 1e6, "test_top1": 0.5},
    ...                      {"name": "b", "multiply_adds": 3e6, "test_top1": 0.75}])
    {'a': None, 'b': 12.5}
    """
    key = f"{split}_top1"
    done = sorted((m for m in members if m.get(key) is not None and m.get("multiply_adds")),
                  key=lambda m: m["multiply_adds"])
    gains: dict[str, float | None] = {}
    for previous, member in zip([None, *done], done):
        extra = None if previous is None else (member["multiply_adds"] - previous["multiply_adds"]) / 1e6
        gains[member["name"]] = None if not extra else 100 * (member[key] - previous[key]) / extra
    return gains


def overlaps(first: tuple[float, float], second: tuple[float, float]) -> bool:
    return first[0] <= second[1] and second[0] <= first[1]


def recommend(members: list[dict]) -> dict | None:
    """The cheapest member within noise of the best on validation top-1, and why (see module doc)."""
    done = [m for m in members if m.get("validation_top1") is not None and m.get("multiply_adds") is not None]
    if not done:
        return None
    best = max(done, key=lambda m: (m["validation_top1"], -m["multiply_adds"]))
    best_interval = split_interval(best, "validation")
    tied = sorted((m for m in done if overlaps(split_interval(m, "validation"), best_interval)),
                  key=lambda m: m["multiply_adds"])
    choice = tied[0]
    return {"name": choice["name"], "best": best["name"], "within_noise": [m["name"] for m in tied],
            "macs_ratio": best["multiply_adds"] / choice["multiply_adds"], "reason": _reason(choice, best)}


def _reason(choice: dict, best: dict) -> str:
    low, high = split_interval(choice, "validation")
    if choice["name"] == best["name"]:
        return (f"{choice['name']} has the best validation top-1 ({100 * choice['validation_top1']:.1f}%, "
                f"95% interval {100 * low:.1f}-{100 * high:.1f}%) and no cheaper member is within its noise")
    best_low, best_high = split_interval(best, "validation")
    return (f"its validation top-1 {100 * choice['validation_top1']:.1f}% (95% interval {100 * low:.1f}-"
            f"{100 * high:.1f}%) overlaps that of the best member {best['name']} "
            f"({100 * best['validation_top1']:.1f}%, {100 * best_low:.1f}-{100 * best_high:.1f}%), "
            f"at {best['multiply_adds'] / choice['multiply_adds']:.1f}x fewer multiply-adds")


def compare_to_reference(members: list[dict], reference: list[dict], split: str = "test") -> list[dict]:
    """Per member name: searched against reference top-1, and whether the difference is outside the noise.

    >>> rows = compare_to_reference([{"name": "phi0", "multiply_adds": 1e6, "test_top1": 0.95, "test_examples": 360}],
    ...                             [{"name": "phi0", "multiply_adds": 2e6, "test_top1": 0.80, "test_examples": 360}])
    >>> rows[0]["verdict"]
    'search better'
    """
    by_name = {m["name"]: m for m in reference}
    rows = []
    for member in members:
        other = by_name.get(member["name"])
        if other is None or member.get(f"{split}_top1") is None or other.get(f"{split}_top1") is None:
            continue
        mine, theirs = split_interval(member, split), split_interval(other, split)
        difference = member[f"{split}_top1"] - other[f"{split}_top1"]
        verdict = "tie (within noise)" if overlaps(mine, theirs) else ("search better" if difference > 0
                                                                       else "reference better")
        rows.append({"name": member["name"], "searched": member[f"{split}_top1"], "reference": other[f"{split}_top1"],
                     "difference": difference, "searched_macs": member.get("multiply_adds"),
                     "reference_macs": other.get("multiply_adds"), "verdict": verdict})
    return rows


def annotate(results: dict) -> dict:
    """Add what the report shows to a family's results: per member ``pareto_efficient`` and
    ``gain_per_extra_million_macs``, the ``recommendation``, and the reference family's
    ``comparison``. Idempotent: recomputed from the members every time.

    >>> results = annotate({"variants": [{"name": "phi0", "multiply_adds": 1e6, "test_top1": 0.9,
    ...                                   "validation_top1": 0.9, "validation_examples": 300}]})
    >>> results["variants"][0]["pareto_efficient"], results["recommendation"]["name"]
    (True, 'phi0')
    """
    members = results.get("variants", [])
    for group in (members, (results.get("reference") or {}).get("variants", [])):
        efficient = pareto_efficient(group)
        gains = gain_per_extra_macs(group)
        for member in group:
            done = member.get("test_top1") is not None
            member["pareto_efficient"] = (member["name"] in efficient) if done else None
            member["gain_per_extra_million_macs"] = gains.get(member["name"])
    results["recommendation"] = recommend(members)
    reference = results.get("reference")
    if reference and reference.get("variants"):
        reference["comparison"] = compare_to_reference(members, reference["variants"])
    return results
