"""The family report: which member to ship, what was searched, and how the family compares with
the un-searched reference family, as Markdown and as one self-contained HTML file.

Everything is drawn from a run's ``results.json`` (``effscale report DIR`` redraws it at any
time), so the numbers on the pages are the numbers in the JSON. Plots (PNG, one per row at page
width; embedded in the HTML, linked from the Markdown): ``accuracy_vs_macs.png`` (test top-1
with 95% intervals against multiply-adds, searched and reference family),
``search_candidates.png`` (each candidate's cost against the target), ``search_history.png``
(reward per trial) and ``training_curves.png`` (every member's validation accuracy and
training loss per epoch, the numbers its TensorBoard log holds).

>>> format_cell({"name": "phi0", "test_top1": 0.9, "test_examples": 100}, "test_top1")
'90.0% (82.6-94.5)'
"""

from __future__ import annotations

import base64
import html
import os
import re

from effscale.common.errors import UserError
from effscale.common.io import write_text
from effscale.common.migrations import read_state
from effscale.family.progress import format_seconds
from effscale.family.recommend import annotate, split_interval
from effscale.family.report_plots import (_cost_unit, _numbered, cost_text, plot_accuracy_vs_macs, plot_search_candidates,
                                   plot_search_history, plot_training_curves)

PLOTS = ("accuracy_vs_macs.png", "search_candidates.png", "search_history.png", "training_curves.png")
MEMBER_COLUMNS = [
    ("member", "name"), ("width", "width"), ("depth", "depth"), ("resolution", "resolution"),
    ("parameters", "parameters"), ("multiply-adds (M)", "multiply_adds"),
    ("test top-1 (95% interval)", "test_top1"), ("test top-5", "test_top5"), ("validation top-1", "validation_top1"),
    ("Pareto-efficient", "pareto_efficient"), ("top-1 points per extra M multiply-adds", "gain_per_extra_million_macs"),
    ("latency (ms)", "latency_ms"), ("training wall time", "wall_seconds"), ("files", "files"),
]
STAGE_COLUMNS = ["stage", "block", "kernel", "stride", "expand", "se", "skip", "repeats", "filters_in",
                 "filters_out", "output_size"]
_CODE = re.compile(r"`([^`]+)`")


# -- cells ----------------------------------------------------------------------------------------

def _percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def format_cell(member: dict, key: str) -> str:
    """The text of one member-table cell (links are drawn by the page writers)."""
    value = member.get(key)
    if key in ("test_top1", "validation_top1"):
        if value is None:
            return "-"
        interval = split_interval(member, key.split("_")[0])
        text = _percent(value)
        if key == "test_top1" and interval is not None and interval != (value, value):
            text += f" ({100 * interval[0]:.1f}-{100 * interval[1]:.1f})"
        return text
    if value is None:
        return "-"
    if key == "test_top5":
        return _percent(value)
    if key == "pareto_efficient":
        return "yes" if value else "no"
    if key == "multiply_adds":
        return f"{value / 1e6:,.2f}"
    if key == "parameters":
        return f"{value:,}"
    if key == "gain_per_extra_million_macs":
        return f"{value:+.2f}"
    if key == "latency_ms":
        return f"{value:.3f}"
    if key == "wall_seconds":
        return format_seconds(value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def member_links(member: dict) -> list[tuple[str, str]]:
    """(label, path relative to the run folder) of a member's model, exports and TensorBoard log."""
    files = member.get("files") or {}
    links = []
    if files.get("model"):
        links.append(("model", files["model"]))
    for path in files.get("exports", []):
        links.append((os.path.basename(path), path))
    if files.get("logs"):
        links.append(("TensorBoard log", files["logs"]))
    return links


# -- page content ---------------------------------------------------------------------------------

def _search_summary(results: dict) -> tuple[list[str], list[tuple[str, str]], list[list[str]]]:
    """(sentences, setup rows, candidate rows) of what was searched and where candidates sat."""
    search = results.get("search") or {}
    setup = search.get("setup") or {}
    baseline = results.get("baseline", {})
    if not setup:
        return ([f"No search: the family scales the baseline `{baseline.get('genotype', '?')}` as it is."], [], [])
    scale, unit = _cost_unit(setup.get("cost"))
    target = setup.get("target")
    reward = setup.get("reward") or {}
    proxy = setup.get("proxy") or {}
    rows = [("oracle", setup.get("oracle", "?")),
            ("search space", f"MBConv stages around `{setup.get('space_reference', '?')}`, "
                             f"{setup.get('space_size', 0):,} genotypes"),
            ("proxy task", f"{proxy.get('epochs', '?')} epochs at {setup.get('resolution', '?')} px, width "
                           f"{setup.get('width', '?')}, on {results.get('dataset', '?')} (validation split)"),
            ("cost", f"{setup.get('cost', '?')} ({unit})"),
            ("target", cost_text(target, setup.get("cost"))),
            ("reward", f"accuracy x (cost / target)^w (MnasNet), w = {reward.get('exponent_under', '?')} at or "
                       f"under the target, {reward.get('exponent_over', '?')} over it"),
            ("constraint", setup.get("constraint", "?")),
            ("trials", str(len(search.get("trials", []))))]
    if search.get("seconds") is not None:
        rows.append(("search wall time", format_seconds(search["seconds"])))
    candidates, ratios = [], []
    for number, trial in _numbered(search.get("trials", [])):
        cost = trial.get("cost")
        ratio = cost / target if (cost is not None and target) else None
        if ratio is not None:
            ratios.append(ratio)
        candidates.append([str(number), trial.get("status", "-"), _fmt_percent(trial.get("accuracy")),
                           "-" if cost is None else f"{cost / scale:,.3g}", _distance(ratio),
                           _fmt(trial.get("reward")), f"`{trial.get('genotype', '-')}`"])
    sentences = []
    if ratios and target:
        over = [r for r in ratios if r > 1]
        target_text = f"{cost_text(target, setup.get('cost'))} target"
        if len(over) == len(ratios):
            sentences.append(f"All {len(ratios)} candidates were over the {target_text} "
                             f"({min(ratios):.2f}x to {max(ratios):.2f}x).")
        elif not over:
            sentences.append(f"All {len(ratios)} candidates were at or under the {target_text} "
                             f"({min(ratios):.2f}x to {max(ratios):.2f}x).")
        else:
            sentences.append(f"{len(over)} of {len(ratios)} candidates were over the {target_text}; "
                             f"costs ran from {min(ratios):.2f}x to {max(ratios):.2f}x of it.")
    return sentences, rows, candidates


def _distance(ratio: float | None) -> str:
    if ratio is None:
        return "-"
    if abs(ratio - 1) < 0.005:
        return "at the target"
    return f"{ratio:.2f}x ({'over' if ratio > 1 else 'under'})"


def _fmt(value) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _fmt_percent(value) -> str:
    return "-" if value is None else _percent(value)


def recommendation_line(results: dict) -> str:
    """The plain recommendation sentence the report opens with."""
    choice = results.get("recommendation")
    if not choice:
        return "No recommendation yet: no member has finished training."
    member = next(m for m in results.get("variants", []) if m["name"] == choice["name"])
    return (f"Recommendation: ship `{choice['name']}` ({member['multiply_adds'] / 1e6:,.2f}M multiply-adds, "
            f"test top-1 {format_cell(member, 'test_top1')}): the cheapest member within noise of the best, "
            f"because {choice['reason']}.")


def _member_rows(members: list[dict]) -> list[list]:
    rows = []
    for member in members:
        row = [format_cell(member, key) for _, key in MEMBER_COLUMNS[:-1]]
        rows.append(row + [member_links(member)])
    return rows


def _sections(results: dict) -> list[dict]:
    """Ordered page sections: title, text paragraphs, optional table, optional plot."""
    sentences, setup_rows, candidates = _search_summary(results)
    baseline = results.get("baseline", {})
    reference = results.get("reference") or {}
    headers = [title for title, _ in MEMBER_COLUMNS]
    sections = [
        {"title": "What was searched", "text": sentences,
         "table": (["setting", "value"], [list(r) for r in setup_rows]) if setup_rows else None},
    ]
    if candidates:
        sections.append({"title": "Candidates against the target", "text": [],
                         "table": (["#", "status", "proxy accuracy", "cost", "cost / target", "reward", "genotype"],
                                   candidates), "plot": "search_candidates.png"})
    family_text = [f"Searched genotype ({baseline.get('source', '?')}): `{baseline.get('genotype', '?')}`, "
                   f"scaled to the base `{baseline.get('scaled_base', '?')}`. Compound coefficients: "
                   + _coefficients(results.get("coefficients") or {}) + ".",
                   "Test top-1 with its 95% interval (binomial, Wilson, over the test images; a spread over "
                   "seeds where members were trained with several). Pareto-efficient: no other member has "
                   "more test top-1 for fewer multiply-adds. Training wall time is the time the console printed."]
    sections.append({"title": "Family", "text": family_text, "table": (headers, _member_rows(results.get("variants", []))),
                     "plot": "accuracy_vs_macs.png"})
    if reference.get("variants"):
        comparison = [[row["name"], _percent(row["searched"]), _percent(row["reference"]),
                       f"{100 * row['difference']:+.1f} points", row["verdict"]]
                      for row in reference.get("comparison", [])]
        sections.append({"title": "Reference family (not searched)",
                         "text": [f"The reference genotype `{reference.get('genotype', '?')}` (the search's starting "
                                  f"point), scaled to `{reference.get('scaled_base', '?')}` and trained exactly like "
                                  "the searched family (same variants, coefficients, data and recipe)."],
                         "table": (headers, _member_rows(reference["variants"]))})
        if comparison:
            sections.append({"title": "Did the search help?", "text": [
                "Test top-1 of each searched member against the reference member of the same name; a "
                "difference inside both 95% intervals is a tie."],
                "table": (["member", "searched", "reference", "difference", "verdict"], comparison)})
    elif reference.get("note"):
        sections.append({"title": "Reference family (not searched)", "text": [reference["note"]]})
    sections.append({"title": "Training curves", "text": [], "plot": "training_curves.png"})
    if candidates:
        sections.append({"title": "Search history", "text": [], "plot": "search_history.png"})
    stages = baseline.get("stages", [])
    if stages:
        sections.append({"title": "Stages of the scaled base",
                         "text": [f"`{baseline.get('scaled_base', '?')}` as the builder makes it."],
                         "table": (STAGE_COLUMNS, [[str(s.get(c, "-")) for c in STAGE_COLUMNS] for s in stages])})
    return sections


def _coefficients(coefficients: dict) -> str:
    text = (f"alpha {coefficients.get('alpha')}, beta {coefficients.get('beta')}, "
            f"gamma {coefficients.get('gamma')}")
    return text + (" (grid-searched at phi = 1)" if coefficients.get("searched") else "")


# -- writers --------------------------------------------------------------------------------------

def write_report(run_dir: str) -> dict:
    """Write report.md, report.html and the plots for ``run_dir``; return their paths."""
    results_path = os.path.join(run_dir, "results.json")
    if not os.path.isfile(results_path):
        raise UserError(f"{run_dir!r} holds no results.json: is it a finished or running effscale family run?")
    results = annotate(read_state(results_path, "family results"))
    paths = {name: os.path.join(run_dir, name) for name in ("report.md", "report.html", *PLOTS)}
    for name, draw in zip(PLOTS, (plot_accuracy_vs_macs, plot_search_candidates, plot_search_history,
                                  plot_training_curves)):
        draw(results, paths[name])
    sections = _sections(results)
    write_text(paths["report.md"], _markdown(results, sections))
    write_text(paths["report.html"], _html(results, sections, run_dir))
    return paths


def _markdown_cell(cell) -> str:
    if isinstance(cell, list):  # links
        return ", ".join(f"[{label}]({path})" for label, path in cell) or "-"
    return str(cell).replace("|", "\\|")


def _markdown(results: dict, sections) -> str:
    parts = ["# effscale family report", "", f"**{recommendation_line(results)}**", "",
             f"Dataset: {results.get('dataset', '?')}.", ""]
    for section in sections:
        parts += [f"## {section['title']}", ""]
        for line in section["text"]:
            parts += [line, ""]
        if section.get("plot"):
            parts += [f"![{section['title']}]({section['plot']})", ""]
        if section.get("table"):
            headers, rows = section["table"]
            parts.append("| " + " | ".join(headers) + " |")
            parts.append("|" + "---|" * len(headers))
            parts += ["| " + " | ".join(_markdown_cell(c) for c in row) + " |" for row in rows]
            parts.append("")
    return "\n".join(parts)


def _inline(text: str) -> str:
    """HTML of a sentence whose `backticked` parts are code."""
    return _CODE.sub(lambda m: f"<code>{m.group(1)}</code>", html.escape(str(text), quote=False))


def _html_cell(cell) -> str:
    if isinstance(cell, list):
        return ", ".join(f'<a href="{html.escape(path)}">{html.escape(label)}</a>' for label, path in cell) or "-"
    return _inline(cell)


def _embedded(run_dir: str, name: str) -> str:
    with open(os.path.join(run_dir, name), "rb") as handle:
        return "data:image/png;base64," + base64.b64encode(handle.read()).decode("ascii")


def _html(results: dict, sections, run_dir: str) -> str:
    style = ("body{font-family:sans-serif;margin:2em auto;max-width:72em;padding:0 1em}"
             "table{border-collapse:collapse;margin:1em 0;font-size:90%}"
             "td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}"
             "th{background:#f3f3f3}img{display:block;width:100%;height:auto;margin:1em 0}"
             "code{font-size:90%;word-break:break-all}p.recommendation{font-size:115%;font-weight:bold}")
    body = ["<h1>effscale family report</h1>",
            f'<p class="recommendation" id="recommendation">{_inline(recommendation_line(results))}</p>',
            f"<p>Dataset: {_inline(results.get('dataset', '?'))}.</p>"]
    for section in sections:
        body.append(f"<h2>{html.escape(section['title'])}</h2>")
        body += [f"<p>{_inline(line)}</p>" for line in section["text"]]
        if section.get("plot"):
            body.append(f'<img src="{_embedded(run_dir, section["plot"])}" alt="{html.escape(section["title"])}">')
        if section.get("table"):
            headers, rows = section["table"]
            head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
            rows_html = "".join("<tr>" + "".join(f"<td>{_html_cell(c)}</td>" for c in row) + "</tr>" for row in rows)
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows_html}</tbody></table>")
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>effscale family report</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")
