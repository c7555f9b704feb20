"""The family report: Markdown and HTML pages with tables and matplotlib plots.

Everything is drawn from a run's ``results.json``, so ``effscale report DIR`` can redraw a
report at any time, and the numbers on the pages are the numbers in the JSON.

Plots (PNG): ``accuracy_vs_macs.png`` (top-1 against multiply-adds for the family, like
Figure 1 of the EfficientNet paper, beside the search's Pareto front of accuracy and cost) and ``search_history.png`` (reward per trial and best so far).
"""

from __future__ import annotations

import html
import os

from effscale.errors import UserError
from effscale.io import read_json, write_text

VARIANT_COLUMNS = [
    ("variant", "name", "{}"), ("width", "width", "{:g}"), ("depth", "depth", "{:g}"),
    ("resolution", "resolution", "{}"), ("parameters", "parameters", "{:,}"),
    ("multiply-adds (M)", "multiply_adds", "{:,.2f}"), ("latency (ms)", "latency_ms", "{:.3f}"),
    ("test top-1", "test_top1", "{:.4f}"), ("test top-5", "test_top5", "{:.4f}"),
    ("validation top-1", "validation_top1", "{:.4f}"), ("training time (s)", "train_seconds", "{:.1f}"),
]
STAGE_COLUMNS = ["stage", "block", "kernel", "stride", "expand", "se", "skip", "repeats", "filters_in",
                 "filters_out", "output_size"]


def _cell(record: dict, key: str, pattern: str) -> str:
    value = record.get(key)
    if value is None:
        return "-"
    if key == "multiply_adds":
        value = value / 1e6
    return pattern.format(value)


def variant_rows(results: dict) -> list[list[str]]:
    return [[_cell(v, key, pattern) for _, key, pattern in VARIANT_COLUMNS] for v in results.get("variants", [])]


def _markdown_table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _html_table(headers: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _plain_log_axis(axes) -> None:
    from matplotlib.ticker import FuncFormatter, LogLocator

    axes.set_xscale("log")
    axes.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axes.xaxis.set_minor_formatter(FuncFormatter(lambda value, _: ""))


def plot_accuracy_vs_macs(results: dict, path: str) -> None:
    """Family accuracy against multiply-adds; the search's Pareto front in a panel of its own,
    since its candidates were measured on the proxy task at their own size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    search = results.get("search") or {}
    pareto = [p for p in search.get("pareto", []) if p.get("cost") is not None and p.get("accuracy") is not None]
    panels = 2 if pareto else 1
    figure, axes_list = plt.subplots(1, panels, figsize=(6.4 * panels, 4.4), dpi=110, squeeze=False)
    axes = axes_list[0][0]
    variants = [v for v in results.get("variants", []) if v.get("test_top1") is not None]
    if variants:
        macs = [v["multiply_adds"] / 1e6 for v in variants]
        top1 = [100 * v["test_top1"] for v in variants]
        axes.plot(macs, top1, "o-", color="tab:red", label="effscale family")
        for v, x, y in zip(variants, macs, top1):
            axes.annotate(v["name"], (x, y), textcoords="offset points", xytext=(5, -12), fontsize=8)
    for name, point in (results.get("reference_points") or {}).items():
        axes.plot(point["multiply_adds"] / 1e6, 100 * point["top1"], "^", color="grey")
        axes.annotate(name, (point["multiply_adds"] / 1e6, 100 * point["top1"]), fontsize=8)
    _plain_log_axis(axes)
    axes.margins(x=0.15, y=0.1)
    axes.set_xlabel("multiply-adds (millions, log scale)")
    axes.set_ylabel("test top-1 accuracy (%)")
    axes.set_title(f"Family: accuracy against compute on {results.get('dataset', '?')}")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(loc="lower right", fontsize=8)
    if pareto:
        front = axes_list[0][1]
        trials = [t for t in search.get("trials", []) if t.get("cost") is not None and t.get("accuracy") is not None]
        scale, unit = {"macs": (1e6, "multiply-adds (millions)"), "params": (1e6, "parameters (millions)"),
                       "latency": (1e-3, "latency (ms)")}.get(search.get("cost"), (1.0, "cost"))
        front.scatter([t["cost"] / scale for t in trials], [100 * t["accuracy"] for t in trials], s=14,
                      color="tab:blue", alpha=0.4, label="trials")
        ordered = sorted(pareto, key=lambda p: p["cost"])
        front.plot([p["cost"] / scale for p in ordered], [100 * p["accuracy"] for p in ordered], "s-",
                   color="tab:blue", label="Pareto front")
        _plain_log_axis(front)
        front.margins(x=0.15, y=0.1)
        front.set_xlabel(f"{unit}, log scale")
        front.set_ylabel("proxy-task accuracy (%)")
        front.set_title("Search: accuracy against cost (proxy task)")
        front.grid(True, which="both", alpha=0.3)
        front.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def plot_search_history(results: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trials = [t for t in (results.get("search") or {}).get("trials", []) if t.get("reward") is not None]
    figure, axes = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    if trials:
        numbers = list(range(1, len(trials) + 1))
        rewards = [t["reward"] for t in trials]
        best, best_so_far = float("-inf"), []
        for reward in rewards:
            best = max(best, reward)
            best_so_far.append(best)
        axes.scatter(numbers, rewards, s=18, color="tab:blue", label="reward of the trial")
        axes.step(numbers, best_so_far, where="post", color="tab:red", label="best so far")
        axes.legend(loc="lower right", fontsize=8)
    else:
        axes.text(0.5, 0.5, "no search in this run", ha="center", va="center", transform=axes.transAxes)
    axes.set_xlabel("trial (in order of completion)")
    axes.set_ylabel("reward")
    axes.set_title("Search history")
    axes.grid(True, alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def write_report(run_dir: str) -> dict:
    """Write report.md, report.html and both PNG plots for ``run_dir``; return their paths."""
    results_path = os.path.join(run_dir, "results.json")
    if not os.path.isfile(results_path):
        raise UserError(f"{run_dir!r} holds no results.json: is it a finished or running effscale family run?")
    results = read_json(results_path)
    paths = {name: os.path.join(run_dir, name) for name in
             ("report.md", "report.html", "accuracy_vs_macs.png", "search_history.png")}
    plot_accuracy_vs_macs(results, paths["accuracy_vs_macs.png"])
    plot_search_history(results, paths["search_history.png"])
    sections = _sections(results)
    write_text(paths["report.md"], _markdown(results, sections))
    write_text(paths["report.html"], _html(results, sections))
    return paths


def _sections(results: dict) -> list[tuple[str, list[str], list[list]]]:
    baseline = results.get("baseline", {})
    search = results.get("search") or {}
    trials = search.get("trials", [])
    sections = [("Family", [c[0] for c in VARIANT_COLUMNS], variant_rows(results))]
    if trials:
        best = float("-inf")
        rows = []
        for number, trial in enumerate(trials, start=1):
            if trial.get("reward") is not None:
                best = max(best, trial["reward"])
            rows.append([number, trial.get("trial_id", "-"), trial.get("status", "-"),
                         _fmt(trial.get("accuracy")), _fmt(trial.get("cost")), _fmt(trial.get("reward")),
                         _fmt(best if best > float("-inf") else None)])
        sections.append(("Search history", ["#", "trial", "status", "accuracy", "cost", "reward", "best so far"], rows))
    stages = baseline.get("stages", [])
    if stages:
        sections.append(("Baseline stages", STAGE_COLUMNS, [[s.get(c, "-") for c in STAGE_COLUMNS] for s in stages]))
    return sections


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _summary_lines(results: dict) -> list[str]:
    baseline = results.get("baseline", {})
    coefficients = results.get("coefficients", {})
    lines = [f"Dataset: {results.get('dataset', '?')}",
             f"Baseline genotype ({baseline.get('source', '?')}): `{baseline.get('genotype', '?')}`"]
    if coefficients:
        lines.append(f"Compound coefficients: alpha {coefficients.get('alpha')}, beta {coefficients.get('beta')}, "
                     f"gamma {coefficients.get('gamma')}"
                     + (" (grid-searched at phi = 1)" if coefficients.get("searched") else ""))
    return lines


def _markdown(results: dict, sections) -> str:
    parts = ["# effscale family report", ""] + [f"- {line}" for line in _summary_lines(results)] + [""]
    parts += ["![accuracy against multiply-adds](accuracy_vs_macs.png)", "",
              "![search history](search_history.png)", ""]
    for title, headers, rows in sections:
        parts += [f"## {title}", "", _markdown_table(headers, rows), ""]
    return "\n".join(parts)


def _html(results: dict, sections) -> str:
    style = ("body{font-family:sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse;margin:1em 0}"
             "td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}th{background:#f3f3f3}"
             "img{max-width:48%;margin-right:1%}code{font-size:90%}")
    summary = "".join(f"<li>{html.escape(line)}</li>" for line in _summary_lines(results))
    body = [f"<h1>effscale family report</h1><ul>{summary}</ul>",
            '<img src="accuracy_vs_macs.png" alt="accuracy against multiply-adds">'
            '<img src="search_history.png" alt="search history">']
    for title, headers, rows in sections:
        body.append(f"<h2>{html.escape(title)}</h2>{_html_table(headers, rows)}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>effscale family report</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")
