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

from effscale.errors import UserError
from effscale.io import atomic_path, read_json, write_text
from effscale.progress import format_seconds
from effscale.recommend import annotate, split_interval

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


# -- plots ----------------------------------------------------------------------------------------

def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plain_log_axis(axes, which: str = "x") -> None:
    from matplotlib.ticker import FuncFormatter, LogLocator

    axis = axes.xaxis if which == "x" else axes.yaxis
    (axes.set_xscale if which == "x" else axes.set_yscale)("log")
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(FuncFormatter(lambda value, _: ""))


def noise_limits(lows: list[float], highs: list[float], minimum_span: float, ceiling: float = 100.0):
    """Axis limits that hold every interval and span at least ``minimum_span`` (kept inside
    0..``ceiling``), so that a difference smaller than the noise never fills the plot.

    >>> noise_limits([97.2, 97.4], [97.8, 97.9], 10.0)
    (89.5, 100.5)
    """
    low, high = min(lows), max(highs)
    if high - low < minimum_span:
        middle = (low + high) / 2
        low, high = middle - minimum_span / 2, middle + minimum_span / 2
        if high > ceiling:
            low, high = low - (high - ceiling), ceiling
        if low < 0:
            low, high = 0.0, high - low
    pad = 0.05 * (high - low)
    return round(low - pad, 6), round(high + pad, 6)


def _save(figure, path: str) -> None:
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", bbox_inches="tight")


def _legend_below(axes, columns: int = 3) -> None:
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=columns, fontsize=8, frameon=False)


def plot_accuracy_vs_macs(results: dict, path: str) -> None:
    """Test top-1 (95% intervals) against multiply-adds: the family, the reference family, the
    Pareto-efficient and the recommended member marked; legend below the axes, hiding nothing."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(9.0, 4.8), dpi=110)
    lows, highs, half_widths = [], [], []
    recommended = (results.get("recommendation") or {}).get("name")
    families = [("searched family", results.get("variants", []), "tab:red", "o-")]
    reference = results.get("reference") or {}
    if reference.get("variants"):
        families.append(("reference family (not searched)", reference["variants"], "tab:grey", "s--"))
    for label, members, color, style in families:
        done = sorted((m for m in members if m.get("test_top1") is not None), key=lambda m: m["multiply_adds"])
        if not done:
            continue
        x = [m["multiply_adds"] / 1e6 for m in done]
        y = [100 * m["test_top1"] for m in done]
        intervals = [split_interval(m, "test") for m in done]
        below = [value - 100 * low for value, (low, _) in zip(y, intervals)]
        above = [100 * high - value for value, (_, high) in zip(y, intervals)]
        axes.errorbar(x, y, yerr=[below, above], fmt=style, color=color, capsize=3, label=f"{label}, 95% interval")
        lows += [100 * low for low, _ in intervals]
        highs += [100 * high for _, high in intervals]
        half_widths += [(a + b) / 2 for a, b in zip(below, above)]
        for member, px, py in zip(done, x, y):
            axes.annotate(member["name"], (px, py), textcoords="offset points", xytext=(6, 6), fontsize=8, color=color)
        if members is results.get("variants"):
            efficient = [(px, py) for m, px, py in zip(done, x, y) if m.get("pareto_efficient")]
            if efficient:
                axes.plot(*zip(*efficient), "*", color="gold", markeredgecolor="black", markersize=13,
                          label="Pareto-efficient member", zorder=5)
            chosen = [(px, py) for m, px, py in zip(done, x, y) if m["name"] == recommended]
            if chosen:
                axes.plot(*zip(*chosen), "o", markerfacecolor="none", markeredgecolor="tab:green", markersize=18,
                          markeredgewidth=2, label=f"recommended: {recommended}", zorder=6)
    for name, point in (results.get("reference_points") or {}).items():
        axes.plot(point["multiply_adds"] / 1e6, 100 * point["top1"], "^", color="black", label=name)
        lows.append(100 * point["top1"])
        highs.append(100 * point["top1"])
    if lows:
        # At least four times the widest half-interval, and at least 5 points: never a zoom into noise.
        axes.set_ylim(*noise_limits(lows, highs, max(5.0, 4 * max(half_widths or [0]))))
        _plain_log_axis(axes)
        axes.margins(x=0.12)
        _legend_below(axes)
    else:
        axes.text(0.5, 0.5, "no member trained yet", ha="center", va="center", transform=axes.transAxes)
    axes.set_xlabel("multiply-adds (millions, log scale)")
    axes.set_ylabel("test top-1 (%)")
    axes.set_title(f"Accuracy against compute on {results.get('dataset', '?')} (test split)")
    axes.grid(True, which="both", alpha=0.3)
    _save(figure, path)
    plt.close(figure)


def plot_search_candidates(results: dict, path: str) -> None:
    """Every candidate's cost and proxy accuracy, the target as a vertical line."""
    plt = _pyplot()
    search = results.get("search") or {}
    setup = search.get("setup") or {}
    figure, axes = plt.subplots(figsize=(9.0, 4.4), dpi=110)
    trials = [t for t in search.get("trials", []) if t.get("cost") is not None and t.get("accuracy") is not None]
    scale, unit = _cost_unit(search.get("cost"))
    if trials:
        axes.scatter([t["cost"] / scale for t in trials], [100 * t["accuracy"] for t in trials], s=22,
                     color="tab:blue", label="candidate (proxy task)")
        for number, trial in _numbered(search.get("trials", [])):
            if trial in trials:
                axes.annotate(f"#{number}", (trial["cost"] / scale, 100 * trial["accuracy"]),
                              textcoords="offset points", xytext=(4, 4), fontsize=7)
        pareto = sorted((p for p in search.get("pareto", []) if p.get("cost") is not None), key=lambda p: p["cost"])
        if pareto:
            axes.plot([p["cost"] / scale for p in pareto], [100 * p["accuracy"] for p in pareto], "-",
                      color="tab:blue", alpha=0.5, label="Pareto front")
        if setup.get("target"):
            axes.axvline(setup["target"] / scale, color="tab:red", linestyle="--",
                         label=f"target: {cost_text(setup['target'], search.get('cost'))}")
        _plain_log_axis(axes)
        axes.margins(x=0.15)
        accuracies = [100 * t["accuracy"] for t in trials]
        axes.set_ylim(*noise_limits(accuracies, accuracies, 10.0))  # proxy accuracies are noisy: no zoom
        _legend_below(axes)
    else:
        axes.text(0.5, 0.5, "no search in this run", ha="center", va="center", transform=axes.transAxes)
    axes.set_xlabel(f"{unit} (log scale)")
    axes.set_ylabel("proxy-task validation accuracy (%)")
    axes.set_title("Search: each candidate against the target")
    axes.grid(True, which="both", alpha=0.3)
    _save(figure, path)
    plt.close(figure)


def plot_search_history(results: dict, path: str) -> None:
    plt = _pyplot()
    numbered = sorted(((n, t) for n, t in _numbered((results.get("search") or {}).get("trials", []))
                       if t.get("reward") is not None), key=lambda pair: pair[0])
    figure, axes = plt.subplots(figsize=(9.0, 4.0), dpi=110)
    if numbered:
        numbers = [n for n, _ in numbered]
        rewards = [t["reward"] for _, t in numbered]
        best, best_so_far = float("-inf"), []
        for reward in rewards:
            best = max(best, reward)
            best_so_far.append(best)
        axes.scatter(numbers, rewards, s=18, color="tab:blue", label="reward of the trial")
        axes.step(numbers, best_so_far, where="post", color="tab:red", label="best so far")
        _legend_below(axes, 2)
    else:
        axes.text(0.5, 0.5, "no search in this run", ha="center", va="center", transform=axes.transAxes)
    axes.set_xlabel("trial (numbered as the console prints them)")
    axes.set_ylabel("reward")
    axes.set_title("Search history")
    axes.grid(True, alpha=0.3)
    _save(figure, path)
    plt.close(figure)


def plot_training_curves(results: dict, path: str) -> None:
    """Validation accuracy and training loss per epoch of every member (searched solid, reference dashed)."""
    plt = _pyplot()
    figure, (accuracy_axes, loss_axes) = plt.subplots(2, 1, figsize=(9.0, 7.6), dpi=110, sharex=True)
    drawn = 0
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    reference = (results.get("reference") or {}).get("variants", [])
    for style, prefix, members in (("-", "", results.get("variants", [])), ("--", "reference ", reference)):
        for index, member in enumerate(members):
            history = member.get("history") or []
            epochs = [entry["epoch"] for entry in history]
            accuracy = [_history_value(entry, "validation_accuracy", "val_accuracy") for entry in history]
            loss = [_history_value(entry, "train_loss", "loss") for entry in history]
            if not epochs:
                continue
            color = colors[index % len(colors)]
            label = prefix + member["name"]
            if all(v is not None for v in accuracy):
                accuracy_axes.plot(epochs, [100 * v for v in accuracy], style, marker=".", color=color, label=label)
            if all(v is not None for v in loss):
                loss_axes.plot(epochs, loss, style, marker=".", color=color, label=label)
            drawn += 1
    accuracy_axes.set_ylabel("validation top-1 (%)")
    accuracy_axes.set_title("Training curves (the numbers of each member's TensorBoard log)")
    loss_axes.set_ylabel("training loss")
    loss_axes.set_xlabel("epoch")
    from matplotlib.ticker import MaxNLocator

    loss_axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    for axes in (accuracy_axes, loss_axes):
        axes.grid(True, alpha=0.3)
    if drawn:
        _legend_below(loss_axes, 4)
    else:
        accuracy_axes.text(0.5, 0.5, "no member trained yet", ha="center", va="center",
                           transform=accuracy_axes.transAxes)
    _save(figure, path)
    plt.close(figure)


def _history_value(entry: dict, *names: str):
    for name in names:
        if entry.get(name) is not None:
            return entry[name]
    return None


def trial_number(trial: dict, position: int) -> int:
    """A trial's number as the console prints it: Keras Tuner's id plus one ("trial 1/6" is id 0)."""
    identifier = str(trial.get("trial_id", ""))
    return int(identifier) + 1 if identifier.isdigit() else position


def _numbered(trials: list[dict]) -> list[tuple[int, dict]]:
    return [(trial_number(trial, position), trial) for position, trial in enumerate(trials, start=1)]


def _cost_unit(cost: str | None) -> tuple[float, str]:
    return {"macs": (1e6, "multiply-adds (millions)"), "params": (1e6, "parameters (millions)"),
            "latency": (1e-3, "latency (ms)")}.get(cost, (1.0, "cost"))


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


def cost_text(value: float | None, cost: str | None) -> str:
    """A cost as people write it.

    >>> cost_text(1.2e6, "macs"), cost_text(5.3e6, "params"), cost_text(0.0021, "latency")
    ('1.2M multiply-adds', '5.3M parameters', '2.1 ms')
    """
    if value is None:
        return "-"
    if cost == "macs":
        return f"{value / 1e6:g}M multiply-adds"
    if cost == "params":
        return f"{value / 1e6:g}M parameters"
    if cost == "latency":
        return f"{value * 1e3:g} ms"
    return f"{value:g}"


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
    results = annotate(read_json(results_path))
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
