"""The family report's plots (matplotlib, Agg): accuracy against multiply-adds, the search's
candidates and history, and the members' training curves; and the trial numbering they share
with the report's tables."""

from __future__ import annotations

from effscale.common.io import atomic_path
from effscale.family.recommend import split_interval


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
