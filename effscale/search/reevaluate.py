"""Noise-aware selection: the search's top candidates are trained again with more seeds and
the winner is chosen by the mean over seeds; when the best candidates are within noise of
each other, the cheapest of them wins.

"Within noise" (:func:`effscale.common.stats.within_noise`): the 95% t-interval of the mean
per-seed difference from the best-by-mean candidate contains 0. Among the best and every
candidate tied with it, the one with the lowest cost wins (ties in cost: the higher mean).

>>> choice = choose([
...     {"genotype": "big", "cost": 9e6, "values": [0.90, 0.88, 0.91]},
...     {"genotype": "small", "cost": 2e6, "values": [0.89, 0.89, 0.90]},
...     {"genotype": "bad", "cost": 1e6, "values": [0.70, 0.71, 0.69]}])
>>> choice["winner"]["genotype"], choice["best_by_mean"]["genotype"], choice["tied"]
('small', 'big', ['big', 'small'])
"""

from __future__ import annotations

import numpy as np

from effscale.common.stats import mean_interval, within_noise


def top_candidates(records: list[dict], k: int, key: str = "reward") -> list[dict]:
    """The ``k`` best completed records by ``key``, one per genotype (its best trial).

    >>> rows = [{"status": "COMPLETED", "genotype": g, "reward": r} for g, r in
    ...         [("a", 0.5), ("b", 0.9), ("a", 0.7), ("c", 0.8)]]
    >>> [(r["genotype"], r["reward"]) for r in top_candidates(rows, 2)]
    [('b', 0.9), ('c', 0.8)]
    """
    best: dict[str, dict] = {}
    for record in records:
        if record.get("status") != "COMPLETED" or record.get(key) is None:
            continue
        held = best.get(record["genotype"])
        if held is None or record[key] > held[key]:
            best[record["genotype"]] = record
    return sorted(best.values(), key=lambda r: -r[key])[:k]


def choose(candidates: list[dict]) -> dict:
    """Pick among ``candidates`` (dicts with ``genotype``, ``cost`` and per-seed ``values``,
    higher is better). Returns ``{"winner", "best_by_mean", "tied" (genotypes within noise of
    the best, best first), "within_noise" (bool), "candidates" (each with mean and 95%
    interval)}``."""
    if not candidates:
        raise ValueError("no candidates to choose from")
    summaries = []
    for candidate in candidates:
        values = [float(v) for v in candidate["values"]]
        low, high = mean_interval(values)
        summaries.append({**candidate, "values": values, "mean": float(np.mean(values)),
                          "std": float(np.std(values, ddof=1)) if len(values) > 1 else None,
                          "interval95": [low, high] if len(values) > 1 else None})
    best = max(summaries, key=lambda s: s["mean"])
    tied = [best] + [s for s in summaries if s is not best and within_noise(best["values"], s["values"])]
    winner = min(tied, key=lambda s: (s["cost"], -s["mean"]))
    return {"winner": winner, "best_by_mean": best, "tied": [s["genotype"] for s in tied],
            "within_noise": len(tied) > 1, "candidates": summaries}


def reevaluate(candidates: list[dict], seeds: int, score, say=None) -> dict:
    """The re-evaluation stage: ``score(genotype, seed_index) -> value`` for seed indices
    ``0..seeds-1`` of every candidate (a record with ``genotype`` and ``cost``; ``score`` should
    return stored values for trainings it already did, which makes the stage resumable), then
    :func:`choose`. Returns its result plus a one-line ``message``."""
    rows = []
    for number, candidate in enumerate(candidates, 1):
        values = [float(score(candidate["genotype"], s)) for s in range(seeds)]
        rows.append({"genotype": candidate["genotype"], "cost": candidate["cost"], "values": values,
                     "trial_id": candidate.get("trial_id")})
        if say:
            say(f"re-evaluated {number}/{len(candidates)} (trial {candidate.get('trial_id')}): mean "
                f"{np.mean(values):.4f} over {seeds} seeds")
    result = choose(rows)
    winner, best = result["winner"], result["best_by_mean"]
    if result["within_noise"]:
        result["message"] = (f"the top {len(rows)} are within noise: {len(result['tied'])} of them cannot be told "
                             f"apart over {seeds} seeds (95% paired interval), so the cheapest wins: trial "
                             f"{winner['trial_id']} (mean {winner['mean']:.4f}; best mean {best['mean']:.4f})")
    else:
        result["message"] = (f"re-evaluation over {seeds} seeds: trial {winner['trial_id']} wins with mean "
                             f"{winner['mean']:.4f}, clearly ahead of the rest")
    return result


def run_reevaluation(path: str, records: list[dict], runner, top_k: int, seeds: int, say=None) -> dict:
    """The search's last stage: the ``top_k`` records by reward, trained to ``seeds`` seeds by
    ``runner`` (an :class:`effscale.search.trial.TrialRunner`, whose stored trainings make a
    rerun free), scored by the reward of each seed's accuracy; writes ``reevaluation.json``,
    the winner to ``best_genotype.json`` and the verdict into ``search.json``."""
    import os

    from effscale.model.genotype import Genotype
    from effscale.common.io import write_json
    from effscale.common.migrations import read_state, write_state

    top = top_candidates(records, top_k)
    cost_of = {r["genotype"]: r["cost"] for r in top}

    def score(genotype: str, seed_index: int) -> float:
        accuracy = runner.train(Genotype.parse(genotype), seed_index)["accuracy"]
        return runner.reward(accuracy, cost_of[genotype])

    result = reevaluate(top, seeds, score, say)
    result.update(top_k=top_k, seeds=seeds, rule="the 95% t-interval of the mean per-seed reward difference from "
                                                "the best-by-mean candidate holds 0: tied; the cheapest tied wins")
    write_json(os.path.join(path, "reevaluation.json"), result)
    write_json(os.path.join(path, "best_genotype.json"), Genotype.parse(result["winner"]["genotype"]).to_dict())
    summary_path = os.path.join(path, "search.json")
    summary = read_state(summary_path, "search") if os.path.exists(summary_path) else {}
    summary["reevaluation"] = {k: result[k] for k in ("winner", "within_noise", "tied", "message", "seeds", "top_k")}
    write_state(summary_path, summary)
    if say:
        say(result["message"])
    return result
