"""Measured CPU latency through the LiteRT (TFLite) interpreter.

The model is converted to a LiteRT flatbuffer by Keras' public ``model.export(format="litert")``;
latency is the median of ``runs`` timed single-image invocations after ``warmup`` untimed
ones. Results are cached on disk by the genotype's canonical key, the variant and the
measuring settings, so a search never measures one architecture twice.

>>> import effscale
>>> seconds = measure_latency(effscale.build("tiny", "w=0.25,d=0.25,r=16", classes=2), runs=3, warmup=1)
>>> 0 < seconds < 1
True
"""

from __future__ import annotations

import json
import os
import statistics
import time
import warnings

import numpy as np

from effscale.common.io import atomic_path, read_json_cache


def to_litert(model, batch_size: int = 1, **converter_settings) -> bytes:
    """The one LiteRT (TFLite) conversion of a Keras model, for latency and export alike: Keras'
    own ``model.export(format="litert")`` (a SavedModel, then ``tf.lite.TFLiteConverter``) at a
    fixed batch size. ``converter_settings`` are converter attributes (``optimizations``,
    ``representative_dataset``, ``target_spec={...}``); by default only LiteRT's built-in ops are
    allowed, so an op the interpreter cannot run fails here rather than when it is invoked.

    >>> import effscale
    >>> flatbuffer = to_litert(effscale.build("tiny", "w=0.25,d=0.25,r=16", classes=2))
    >>> interpreter(flatbuffer).get_input_details()[0]["shape"].tolist()
    [1, 16, 16, 3]
    """
    import tempfile

    import tensorflow as tf

    from effscale.common.console import native_logs_quieted

    settings = dict(converter_settings)
    settings["target_spec"] = {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS], **settings.get("target_spec", {})}
    spec = tf.TensorSpec([batch_size, *model.input_shape[1:]], tf.float32)
    with tempfile.TemporaryDirectory() as folder, native_logs_quieted():
        path = os.path.join(folder, "model.tflite")
        model.export(path, format="litert", input_signature=[spec], verbose=False, **settings)
        with open(path, "rb") as handle:
            return handle.read()


def interpreter(flatbuffer: bytes, threads: int = 1):
    """A LiteRT interpreter, from ai_edge_litert where installed, else TensorFlow's copy."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # pragma: no cover - ai-edge-litert is a dependency
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    from effscale.common.console import native_logs_quieted

    with warnings.catch_warnings(), native_logs_quieted():  # LiteRT prints "INFO: Created ... delegate"
        warnings.simplefilter("ignore")
        result = Interpreter(model_content=flatbuffer, num_threads=threads)
        result.allocate_tensors()
    return result


def measure_flatbuffer(flatbuffer: bytes, runs: int = 20, warmup: int = 3, threads: int = 1, seed: int = 0) -> float:
    """Median seconds per invocation of a LiteRT flatbuffer on random [0, 255] input."""
    if runs < 1 or warmup < 0 or threads < 1:
        raise ValueError("runs and threads must be >= 1 and warmup >= 0")
    runner = interpreter(flatbuffer, threads)
    detail = runner.get_input_details()[0]
    data = np.random.default_rng(seed).uniform(0, 255, detail["shape"]).astype(detail["dtype"])
    runner.set_tensor(detail["index"], data)
    for _ in range(warmup):
        runner.invoke()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        runner.invoke()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure_latency(model, runs: int = 20, warmup: int = 3, threads: int = 1) -> float:
    """Median seconds for one image through the LiteRT interpreter on this CPU."""
    return measure_flatbuffer(to_litert(model), runs=runs, warmup=warmup, threads=threads)


def cached_latency(genotype, variant, cache_dir: str, classes: int = 1000, runs: int = 20, warmup: int = 3,
                   threads: int = 1) -> float:
    """:func:`measure_latency` of ``build(genotype, variant)``, cached in ``cache_dir/latency.json``.

    >>> import tempfile, effscale
    >>> folder = tempfile.mkdtemp()
    >>> first = cached_latency("tiny", "w=0.25,d=0.25,r=16", folder, classes=2, runs=2, warmup=0)
    >>> cached_latency("tiny", "w=0.25,d=0.25,r=16", folder, classes=2, runs=2, warmup=0) == first
    True
    """
    from effscale.model.builder import build
    from effscale.model.zoo import load_genotype
    from effscale.model.variants import resolve_variant

    genotype = load_genotype(genotype)
    variant = resolve_variant(variant, genotype)
    key = (f"{genotype.key}|w{variant.width:g}|d{variant.depth:g}|r{variant.resolution}|c{classes}"
           f"|t{threads}|n{runs}")
    os.makedirs(cache_dir, exist_ok=True)
    path = os.path.join(cache_dir, "latency.json")
    cache = read_json_cache(path)
    if key not in cache:
        cache[key] = measure_latency(build(genotype, variant, classes=classes), runs, warmup, threads)
        fresh = read_json_cache(path)  # another process may have added entries meanwhile
        fresh.update(cache)
        with atomic_path(path) as temporary, open(temporary, "w") as handle:
            json.dump(fresh, handle, indent=1, sort_keys=True)
    return cache[key]


