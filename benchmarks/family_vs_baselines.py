"""The headline: does a searched family beat hand-designed families at the same multiply-adds?

One family run (``effscale.run_family``: search -> coefficients -> members) gives the searched
members. Beside them, every member's multiply-adds are matched by

* ``reference``: the un-searched baseline (``tiny``) with the same base, the member's depth and
  resolution (the run's coefficients) and its width bisected to the member's multiply-adds;
* ``efficientnet-b0`` and ``mobilenet-v2``: the published genotypes at the member's resolution,
  their width multiplier bisected to the member's multiply-adds (depth halved when the narrowest
  is still over);

the achieved multiply-adds ratio is reported (filters round to multiples of 8). All are trained
with ``effscale.train_variant`` and the same data, recipe and epochs, once per seed
of the setting's seeds (seed 0 of a searched member is the family run's own training, read
back by the same call). The naive baseline is keras.applications ``EfficientNetB0`` and
``MobileNetV2`` at 32 px with random weights, as a user would instantiate them, trained with the
same recipe's optimizer and epochs (MobileNetV2 behind its ``preprocess_input`` scaling).

Reported on the test split (seed mean and spread, wall-clock per model): ``OUT/results.json``,
``OUT/results.md`` and a plot of test accuracy against multiply-adds. Each searched member gets a
verdict against the best baseline at its multiply-adds: above / below, or a tie when the paired
seed difference is inside seed noise (``effscale.stats.within_noise``).

Resumable: every training has its own folder under ``WORK`` (``train_variant`` resumes it, a
finished one returns its record) and the family run resumes from its state; rerun the same
command after a kill.

    .venv/bin/python benchmarks/family_vs_baselines.py                # Fashion-MNIST (hours of CPU)
    .venv/bin/python benchmarks/family_vs_baselines.py --smoke --work /tmp/fvb --out /tmp/fvb
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

BASELINE_GENOTYPES = ("efficientnet-b0", "mobilenet-v2")
# Published Fashion-MNIST reference points (the benchmark table of the dataset's README,
# github.com/zalandoresearch/fashion-mnist): test accuracy.
PUBLISHED = {"2 conv layers, < 100K parameters": 0.925, "MobileNet": 0.950, "ResNet18": 0.949,
             "Google AutoML Vision, 24 compute hours": 0.939}

SETTINGS = {
    # Sized for a 2-core CPU in about two hours: the search trains each candidate at the Fashion-MNIST
    # table's proxy setting (1 epoch on 10% of the training split) with the oracle the tabular study
    # found best (random search behind the cost-aware predicted-reward prescreen), every model 3 epochs.
    "full": {"dataset": "fashion_mnist", "trials": 30, "search_epochs": 1, "search_target": 2e6,
             "search_oracle": "random", "search_prescreen": "reward:10", "search_train_fraction": 0.1,
             "coefficient_search": True, "base": "", "family": "phi=0..2", "epochs": 3, "seeds": (0, 1),
             "applications": {"EfficientNetB0": {}, "MobileNetV2": {}}, "applications_resolution": 32},
    "smoke": {"dataset": "digits", "trials": 2, "search_epochs": 1, "search_target": 2e5,
              "coefficient_search": False, "base": "w=0.25,d=0.25,r=12", "family": "phi=0", "epochs": 1,
              "seeds": (0,), "applications": {"MobileNetV2": {"alpha": 0.35}}, "applications_resolution": 32},
}


def family_config(settings: dict) -> dict:
    """The family run's configuration (a plain dict, as a YAML file would hold it)."""
    config = {"dataset": settings["dataset"], "baseline": "tiny", "reference_family": False,
              "search": {"oracle": settings.get("search_oracle", "evolution"), "trials": settings["trials"],
                         "epochs": settings["search_epochs"], "cost": "macs", "target": settings["search_target"]},
              "coefficients": {"search": settings["coefficient_search"], "max_trials": 4, "epochs": 1},
              "scaling": {"family": settings["family"]},
              "training": {"epochs": settings["epochs"], "batch_size": 64}}
    for key in ("prescreen", "train_fraction"):
        if settings.get(f"search_{key}") is not None:
            config["search"][key] = settings[f"search_{key}"]
    if settings["base"]:
        config["scaling"]["base"] = settings["base"]
    return config


def train_member(genotype, variant, settings: dict, folder: str, seed: int) -> dict:
    """One training with the family run's own arguments (effscale.family trains members so)."""
    from effscale.train import train_variant

    return train_variant(genotype, variant, dataset=settings["dataset"], out_dir=folder, epochs=settings["epochs"],
                         batch_size=64, seed=seed, validation_fraction=0.2, verbose=0, latency_runs=0)


def matched_variant(genotype, member, macs: float, depths=(1.0, 0.5, 0.25)):
    """``genotype`` at the ``member`` variant's resolution, its width multiplier bisected until
    its multiply-adds come closest to ``macs``: at the first of ``depths`` that gets within 10%
    (the published zoo genotypes' stems and heads are sized for 224 px ImageNet, so the narrowest
    of them can be over a small member at full depth). Returns the genotype and the Variant.

    >>> from effscale.cost import multiply_adds
    >>> from effscale.scaling import Variant
    >>> from effscale.zoo import get_genotype
    >>> genotype, variant = matched_variant(get_genotype("mobilenet-v2"), Variant("m", 1, 1, 32), 2e6)
    >>> abs(multiply_adds(genotype, variant, 10) / 2e6 - 1) < 0.1
    True
    """
    from effscale.cost import multiply_adds
    from effscale.scaling import Variant

    resolution, best = member.resolution, None
    for depth in depths:
        low, high = 0.01, 8.0
        for _ in range(30):
            middle = (low * high) ** 0.5
            if multiply_adds(genotype, Variant("matched", middle, depth, resolution), 10) < macs:
                low = middle
            else:
                high = middle
        for width in (low, high):
            variant = Variant(f"{member.name}-matched", round(width, 4), depth, resolution)
            error = abs(multiply_adds(genotype, variant, 10) / macs - 1)
            if best is None or error < best[0]:
                best = (error, variant)
        if best[0] <= 0.1:
            break
    return genotype, best[1]


def train_application(name: str, settings: dict, folder: str, seed: int) -> dict:
    """keras.applications ``name`` at 32 px, random weights, the recipe's optimizer (its
    constructor's keywords from ``settings["applications"]``: the smoke mode's narrow
    MobileNetV2); cached in ``folder/results.json`` once finished."""
    from effscale.io import read_json, write_json

    path = os.path.join(folder, "results.json")
    if os.path.exists(path):
        return read_json(path)
    import keras

    from effscale.cost import profiler_flops
    from effscale.data import load_data
    from effscale.recipe import Recipe
    from effscale.search.proxy import steps_per_epoch

    started = time.perf_counter()
    keras.utils.set_random_seed(seed)
    resolution = settings["applications_resolution"]
    data = load_data(settings["dataset"], resolution=resolution, batch_size=64, seed=0, shuffle_seed=seed)
    application = getattr(keras.applications, name)
    body = application(weights=None, input_shape=(resolution, resolution, 3), classes=data.num_classes,
                       **settings["applications"][name])
    if name == "MobileNetV2":  # its preprocess_input: pixels to [-1, 1]
        inputs = keras.Input((resolution, resolution, 3))
        model = keras.Model(inputs, body(keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)))
    else:  # EfficientNetB0 rescales 0-255 pixels itself
        model = body
    recipe = Recipe(epochs=settings["epochs"])
    model.compile(recipe.make_optimizer(64, steps_per_epoch(data), settings["epochs"]),
                  keras.losses.SparseCategoricalCrossentropy(), metrics=["accuracy"], jit_compile=False)
    model.fit(data.train, epochs=settings["epochs"], verbose=0, shuffle=False)  # the dataset shuffles itself
    test = model.evaluate(data.test, verbose=0, return_dict=True)
    record = {"test_top1": float(test["accuracy"]), "parameters": int(model.count_params()),
              "multiply_adds": int(profiler_flops(model) // 2), "wall_seconds": round(time.perf_counter() - started, 3)}
    os.makedirs(folder, exist_ok=True)
    write_json(path, record)
    keras.backend.clear_session()
    return record


def summarize(trainings: list) -> dict:
    import numpy as np

    accuracies = [t["test_top1"] for t in trainings]
    return {"test_top1_seeds": accuracies, "test_top1": float(np.mean(accuracies)),
            "spread": float(np.std(accuracies, ddof=1)) if len(accuracies) > 1 else 0.0,
            "wall_seconds": round(float(sum(t["wall_seconds"] for t in trainings)), 1)}


def verdict(searched: list, baseline: list) -> str:
    from effscale.stats import within_noise

    if within_noise(searched, baseline):
        return "tie"
    return "above" if sum(searched) > sum(baseline) else "below"


def run(settings: dict, work: str, verbose: int = 1) -> dict:
    """Every training of the comparison, resumed from ``work``; the results document."""
    from effscale.cost import multiply_adds, parameter_count
    from effscale.family import run_family
    from effscale.genotype import Genotype
    from effscale.io import read_json
    from effscale.scaling import Variant, scale_genotype
    from effscale.zoo import get_genotype

    def say(text):
        if verbose:
            print(text, flush=True)

    started = time.perf_counter()
    family_dir = os.path.join(work, "family")
    run_family(family_config(settings), out_dir=family_dir, verbose=0)
    state = read_json(os.path.join(family_dir, "state.json"))["stages"]
    searched_base = Genotype.parse(state["scaling"]["base_genotype"])
    reference = get_genotype("tiny")
    reference_base = scale_genotype(reference, settings["base"]) if settings["base"] else reference
    coefficients = read_json(os.path.join(family_dir, "results.json"))["coefficients"]
    variants = [Variant.from_dict(v) for v in state["scaling"]["variants"]]
    classes = 10
    members, families = [], {"searched": [], "reference": [], **{n: [] for n in BASELINE_GENOTYPES}}
    for variant in variants:
        macs = multiply_adds(searched_base, variant, classes)
        members.append({"name": variant.name, "macs": macs})
        plan = {"searched": (searched_base, variant, os.path.join(family_dir, "variants", variant.name)),
                "reference": (*matched_variant(reference_base, variant, macs, depths=(variant.depth,)), None)}
        for name in BASELINE_GENOTYPES:
            plan[name] = (*matched_variant(get_genotype(name), variant, macs), None)
        for family, (genotype, member_variant, seed0_dir) in plan.items():
            trainings = []
            for seed in settings["seeds"]:
                folder = seed0_dir if seed == 0 and seed0_dir else os.path.join(work, "train", family, variant.name,
                                                                                 f"seed{seed}")
                trainings.append(train_member(genotype, member_variant, settings, folder, seed))
            row = {"member": variant.name, "variant": member_variant.to_dict(),
                   "macs": multiply_adds(genotype, member_variant, classes),
                   "params": parameter_count(genotype, member_variant, classes), **summarize(trainings)}
            row["macs_ratio"] = row["macs"] / macs
            families[family].append(row)
            say(f"{family:16s} {variant.name:10s} macs {row['macs'] / 1e6:7.2f}M ({row['macs_ratio']:.2f}x) "
                f"test {row['test_top1']:.4f} ± {row['spread']:.4f}")
    applications = {}
    for name in settings["applications"]:
        trainings = [train_application(name, settings, os.path.join(work, "applications", name, f"seed{seed}"), seed)
                     for seed in settings["seeds"]]
        applications[name] = {"macs": trainings[0]["multiply_adds"], "params": trainings[0]["parameters"],
                              **summarize(trainings)}
        say(f"keras {name:10s} macs {applications[name]['macs'] / 1e6:7.2f}M test {applications[name]['test_top1']:.4f}")
    verdicts = []
    for index, member in enumerate(members):
        searched = families["searched"][index]
        rivals = {f: families[f][index] for f in ("reference", *BASELINE_GENOTYPES)}
        best = max(rivals, key=lambda f: rivals[f]["test_top1"])
        verdicts.append({"member": member["name"], "best_baseline": best,
                         "verdict": verdict(searched["test_top1_seeds"], rivals[best]["test_top1_seeds"]),
                         "difference": searched["test_top1"] - rivals[best]["test_top1"]})
    small = [r for r in families["searched"] if r["params"] < 100_000]
    goals = {"under_100k_params_at_least_0.925": (max(r["test_top1"] for r in small) >= 0.925) if small else None,
             "largest_at_least_0.94": families["searched"][-1]["test_top1"] >= 0.94,
             "every_member_on_or_above_best_baseline": all(v["verdict"] in ("above", "tie") for v in verdicts)}
    return {"settings": {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()},
            "coefficients": coefficients, "searched_genotype": state["search"]["genotype"],
            "families": families, "applications": applications, "verdicts": verdicts, "goals": goals,
            "published": PUBLISHED, "wall_seconds_this_invocation": round(time.perf_counter() - started, 1)}


def markdown(results: dict) -> str:
    lines = ["| family | member | w / d / r | MACs (ratio) | params | test top-1 (seed mean ± std) | wall s |",
             "|---|---|---|---|---|---|---|"]
    for family, rows in results["families"].items():
        for row in rows:
            v = row["variant"]
            lines.append(f"| {family} | {row['member']} | {v['width']:g} / {v['depth']:g} / {v['resolution']} | "
                         f"{row['macs'] / 1e6:.2f}M ({row['macs_ratio']:.2f}x) | {row['params']:,} | "
                         f"{row['test_top1']:.4f} ± {row['spread']:.4f} | {row['wall_seconds']:.0f} |")
    for name, row in results["applications"].items():
        lines.append(f"| keras.applications | {name} | 32 px | {row['macs'] / 1e6:.2f}M | {row['params']:,} | "
                     f"{row['test_top1']:.4f} ± {row['spread']:.4f} | {row['wall_seconds']:.0f} |")
    lines += ["", "| searched member | best baseline at its MACs | difference | verdict |", "|---|---|---|---|"]
    lines += [f"| {v['member']} | {v['best_baseline']} | {v['difference']:+.4f} | {v['verdict']} |"
              for v in results["verdicts"]]
    lines += ["", "Goals: " + ", ".join(f"{k}: {v}" for k, v in results["goals"].items())]
    return "\n".join(lines) + "\n"


def plot(results: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for family, rows in results["families"].items():
        axes.errorbar([r["macs"] / 1e6 for r in rows], [r["test_top1"] for r in rows],
                      yerr=[r["spread"] for r in rows], marker="o", capsize=3, label=family)
    for name, row in results["applications"].items():
        axes.errorbar([row["macs"] / 1e6], [row["test_top1"]], yerr=[row["spread"]], marker="s", linestyle="none",
                      capsize=3, label=f"keras {name} (32 px)")
    axes.set_xscale("log")
    axes.set_xlabel("multiply-adds (millions, log)")
    axes.set_ylabel("test top-1")
    axes.set_title("searched family vs hand-designed families at matched multiply-adds")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="digits, tiny sizes, 1 epoch: checks the code path")
    parser.add_argument("--work", default=os.path.join(HERE, "family_vs_baselines", "work"))
    parser.add_argument("--out", default=os.path.join(HERE, "family_vs_baselines"))
    parser.add_argument("--plot", help="default: docs/img/family_vs_baselines.png (OUT/plot.png with --smoke)")
    parser.add_argument("--epochs", type=int, help="training epochs of every model (default: the setting's)")
    parser.add_argument("--trials", type=int, help="search trials (default: the setting's)")
    args = parser.parse_args(argv)
    settings = dict(SETTINGS["smoke" if args.smoke else "full"])
    for key in ("epochs", "trials"):
        if getattr(args, key) is not None:
            if getattr(args, key) < 1:
                parser.error(f"--{key} must be at least 1")
            settings[key] = getattr(args, key)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from effscale.io import write_json, write_text

    results = run(settings, args.work)
    os.makedirs(args.out, exist_ok=True)
    write_json(os.path.join(args.out, "results.json"), results)
    write_text(os.path.join(args.out, "results.md"), markdown(results))
    plot_path = args.plot or (os.path.join(args.out, "plot.png") if args.smoke else
                              os.path.join(HERE, os.pardir, "docs", "img", "family_vs_baselines.png"))
    plot(results, plot_path)
    print(markdown(results))
    print(f"wrote {args.out}/results.json, results.md and {plot_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
