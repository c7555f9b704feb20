"""Compound-coefficient search, the EfficientNet paper's step 1.

Fix phi = 1 and grid-search alpha (depth), beta (width), gamma (resolution) under
alpha * beta^2 * gamma^2 ~= 2, so every candidate costs about twice the baseline's
multiply-adds and the proxy-task accuracy alone decides. It runs as a Keras Tuner
``GridSearch`` over one categorical choice, so it resumes like any tuner project.

>>> triples = coefficient_grid(step=0.05, tolerance=0.1, count=4)
>>> len(triples), all(abs(a * b * b * g * g - 2) <= 0.1 for a, b, g in triples)
(4, True)
>>> (1.2, 1.1, 1.15) in coefficient_grid(count=1000)
True
"""

from __future__ import annotations

import os

from effscale.common.errors import UserError


def coefficient_grid(step: float = 0.05, tolerance: float = 0.1, count: int = 6,
                     low: float = 1.0, high: float = 1.6) -> list[tuple[float, float, float]]:
    """Up to ``count`` (alpha, beta, gamma) triples on a grid with |alpha beta^2 gamma^2 - 2| <= tolerance,
    spread evenly over the valid ones (ordered by alpha, then beta)."""
    steps = int(round((high - low) / step))
    values = [round(low + i * step, 4) for i in range(steps + 1)]
    valid = [(a, b, g) for a in values for b in values for g in values
             if abs(a * b * b * g * g - 2.0) <= tolerance]
    if not valid:
        raise UserError(f"no coefficient triple within {tolerance} of alpha*beta^2*gamma^2 = 2 on a {step} grid")
    if len(valid) <= count:
        return valid
    picks = sorted({round(i * (len(valid) - 1) / (count - 1)) for i in range(count)}) if count > 1 else [0]
    return [valid[i] for i in picks]


def _encode(triple) -> str:
    return ",".join(f"{v:g}" for v in triple)


def _decode(text: str) -> tuple[float, float, float]:
    alpha, beta, gamma = (float(v) for v in text.split(","))
    return alpha, beta, gamma


def search_coefficients(genotype, data: "DataSpec | str" = "digits", project_dir: str = "coefficients", epochs: int = 2,
                        max_trials: int = 6, step: float = 0.05, tolerance: float = 0.1, batch_size: int = 64,
                        seed: int = 0, verbose: int = 0) -> dict:
    """Grid-search (alpha, beta, gamma) at phi = 1 on ``data`` (a :class:`~effscale.data.spec.DataSpec`
    or a source name; its resolution is each candidate's); return the best and every trial.

    Rerunning with the same ``project_dir`` reloads the finished trials (Keras Tuner resume).
    """
    import keras
    import keras_tuner

    from effscale.model.builder import ModelOptions, build
    from effscale.data.pipeline import DataSpec, load_data
    from effscale.model.zoo import load_genotype
    from effscale.model.scaling import phi_variant

    genotype = load_genotype(genotype)
    triples = coefficient_grid(step, tolerance, max_trials)
    choices = [_encode(t) for t in triples]
    # One dataset per resolution in the grid, loaded once.
    datasets: dict[int, object] = {}

    def data_for(resolution: int):
        if resolution not in datasets:
            datasets[resolution] = load_data(DataSpec.of(data).replace(resolution=resolution), batch_size=batch_size,
                                             shuffle_seed=seed)
        return datasets[resolution]

    class CoefficientHyperModel(keras_tuner.HyperModel):
        def build(self, hp):
            alpha, beta, gamma = _decode(hp.Choice("coefficients", choices))
            variant = phi_variant(1, genotype, alpha, beta, gamma)
            splits = data_for(variant.resolution)
            model = build(genotype, variant, classes=splits.num_classes, options=ModelOptions(bn_momentum=0.9))
            model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy",
                          metrics=["accuracy"])
            return model

        def fit(self, hp, model, *args, **kwargs):
            alpha, beta, gamma = _decode(hp.get("coefficients"))
            splits = data_for(phi_variant(1, genotype, alpha, beta, gamma).resolution)
            return model.fit(splits.train, validation_data=splits.validation, epochs=epochs, shuffle=False,
                             verbose=verbose, callbacks=kwargs.get("callbacks", []))

    os.makedirs(project_dir, exist_ok=True)
    tuner = keras_tuner.GridSearch(
        CoefficientHyperModel(), objective="val_accuracy", max_trials=len(choices), seed=seed,
        directory=project_dir, project_name="grid", overwrite=False)
    tuner.search(verbose=verbose)
    trials = []
    for trial in tuner.oracle.trials.values():
        if trial.status != "COMPLETED":
            continue
        alpha, beta, gamma = _decode(trial.hyperparameters.get("coefficients"))
        trials.append({"alpha": alpha, "beta": beta, "gamma": gamma,
                       "validation_accuracy": trial.metrics.get_best_value("val_accuracy")})
    if not trials:
        raise RuntimeError("the coefficient search finished no trial")
    best = max(trials, key=lambda t: t["validation_accuracy"])
    return {"alpha": best["alpha"], "beta": best["beta"], "gamma": best["gamma"], "searched": True,
            "trials": sorted(trials, key=lambda t: (t["alpha"], t["beta"], t["gamma"]))}
