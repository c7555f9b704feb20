"""Move weights into effscale models by layer name: from keras.applications weight files,
Keras weight files, ``.keras`` models and live models.

:func:`load_weights` reads a source into ``{layer name: [arrays]}`` and copies every layer
whose name and weight shapes match into the target model; :class:`TransferReport` says what
was transferred, what matched by name but not by shape, which target layers had no source
layer and which source layers were left unused. Sources:

* a ``keras.Model`` (e.g. another variant of the same genotype, or keras.applications);
* a ``.keras`` model file;
* a Keras 3 ``.weights.h5`` file (``model.save_weights``);
* a legacy ``.h5`` file: keras.applications' ImageNet files (``efficientnetb0.h5``,
  ``efficientnetb0_notop.h5``, cached by keras under ``~/.keras/models/``), a legacy
  ``model.save("x.h5")`` file or ``save_weights`` in the legacy format;
* ``"imagenet:bN"`` (or ``"imagenet"`` for a model named ``effscale_bN``): keras' cached
  ImageNet file for EfficientNet-BN. effscale never downloads: a missing file is a
  :class:`~effscale.common.errors.UserError` that says where to put it.

keras.applications leaves its preprocessing layers unnamed, so Keras numbers them per
process (``normalization_3``); those are matched by type and order instead.

keras' ImageNet EfficientNet files store the per-channel standard deviation as the
Normalization *variance* and keras adds a compensating ``Rescaling`` layer when it loads them
(tensorflow/tensorflow#49930). effscale models have no such layer, so a source Normalization
holding exactly (ImageNet mean, ImageNet stddev) is loaded as (mean, stddev**2), which gives
the same ``(x / 255 - mean) / stddev`` input; the report's ``notes`` say so.

>>> import effscale
>>> a = effscale.build("tiny", "w=0.5,d=0.5,r=32", classes=3)
>>> b = effscale.build("tiny", "w=0.5,d=0.5,r=32", classes=3)
>>> report = transfer_weights(a, b)
>>> report.mismatched, report.missing
([], [])
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

import numpy as np

from effscale.common.errors import UserError

_AUTO_NAMED = re.compile(r"^(rescaling|normalization)(_\d+)?$")
_IMAGENET = re.compile(r"^imagenet(?::(b[0-7]))?(?::(notop|top))?$")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STDDEV = (0.229, 0.224, 0.225)
KERAS_WEIGHTS_URL = "https://storage.googleapis.com/keras-applications/"


@dataclass
class TransferReport:
    """What a weight transfer did, layer by layer (names are canonical target layer names)."""

    transferred: list[str] = field(default_factory=list)   # name and every shape matched
    mismatched: list[str] = field(default_factory=list)    # name matched, a shape did not
    missing: list[str] = field(default_factory=list)       # target layer with no source layer
    unused: list[str] = field(default_factory=list)        # source layer with no target layer
    shapes: dict = field(default_factory=dict)              # mismatched name -> (source, target) shapes
    notes: list[str] = field(default_factory=list)
    source: str = ""

    def to_dict(self) -> dict:
        return {"source": self.source, "transferred": self.transferred, "mismatched": self.mismatched,
                "missing": self.missing, "unused": self.unused,
                "shapes": {k: [[list(s) for s in v[0]], [list(s) for s in v[1]]] for k, v in self.shapes.items()},
                "notes": self.notes}

    @property
    def exact(self) -> bool:
        """Every target layer and every source layer found its match."""
        return not (self.mismatched or self.missing or self.unused)

    def summary(self) -> str:
        """One line: counts per outcome.

        >>> TransferReport(transferred=["a", "b"], missing=["c"]).summary()
        'transferred 2 layers, mismatched 0, missing 1, unused 0'
        """
        return (f"transferred {len(self.transferred)} layers, mismatched {len(self.mismatched)}, "
                f"missing {len(self.missing)}, unused {len(self.unused)}")

    def table(self, limit: int = 20) -> str:
        """A plain-text table: one row per layer that was not transferred (up to ``limit``
        per outcome), then the counts.

        >>> print(TransferReport(transferred=["a"], mismatched=["p"], shapes={"p": ([(4, 3)], [(4, 5)])}).table())
        outcome     layer  source shapes  target shapes
        mismatched  p      (4, 3)         (4, 5)
        transferred 1 layers, mismatched 1, missing 0, unused 0
        """
        rows = []
        for outcome, names in (("mismatched", self.mismatched), ("missing", self.missing), ("unused", self.unused)):
            for name in names[:limit]:
                source, target = self.shapes.get(name, ((), ()))
                rows.append((outcome, name, " ".join(str(tuple(s)) for s in source) or "-",
                             " ".join(str(tuple(s)) for s in target) or "-"))
            if len(names) > limit:
                rows.append((outcome, f"... {len(names) - limit} more", "", ""))
        lines = []
        if rows:
            header = ("outcome", "layer", "source shapes", "target shapes")
            widths = [max(len(r[i]) for r in rows + [header]) for i in range(4)]
            for row in [header] + rows:
                lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        lines.extend(self.notes)
        lines.append(self.summary())
        return "\n".join(lines)


def canonical_name(name: str, seen: dict) -> str:
    """The canonical name of a layer: its own, except auto-named preprocessing layers,
    which become ``rescaling``, ``rescaling_1``, ... in order of appearance (``seen`` counts)."""
    match = _AUTO_NAMED.match(name)
    if not match:
        return name
    base = match.group(1)
    ordinal = seen.get(base, 0)
    seen[base] = ordinal + 1
    return base if ordinal == 0 else f"{base}_{ordinal}"


def canonical_layers(model) -> dict:
    """Layers with weights, keyed by name; auto-named preprocessing layers by type and order."""
    layers, seen = {}, {}
    for layer in model.layers:
        if not layer.weights:
            continue
        layers[canonical_name(layer.name, seen)] = layer
    return layers


def transfer_weights(source, target) -> TransferReport:
    """Copy every layer whose name and weight shapes match from model ``source`` into model
    ``target``; see :func:`load_weights` for files."""
    arrays = {name: [np.asarray(w) for w in layer.get_weights()] for name, layer in canonical_layers(source).items()}
    return _apply(arrays, target, getattr(source, "name", "model"))


# -- reading sources ----------------------------------------------------------------------------

def keras_cache_dir() -> str:
    """Where keras caches downloaded weight files: ``$KERAS_HOME/models`` (default ``~/.keras/models``).

    >>> keras_cache_dir().endswith("models")
    True
    """
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(home, "models")


def imagenet_weights_path(variant: str = "b0", include_top: bool = False, strict: bool = False) -> str:
    """The path of keras' cached ImageNet file for EfficientNet-``variant``; a UserError that
    says where to put it when it is not there (effscale never downloads). Without ``strict``
    the file with (or without) the classifier stands in for a missing one without (or with).

    >>> import os, tempfile
    >>> os.environ["KERAS_HOME"] = tempfile.mkdtemp()
    >>> imagenet_weights_path("b0")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    effscale.common.errors.UserError: ImageNet weights for EfficientNet-B0 are not on this machine ...
    >>> del os.environ["KERAS_HOME"]
    """
    variant = variant.lower()
    if not re.fullmatch(r"b[0-7]", variant):
        raise UserError(f"keras.applications has ImageNet weights for EfficientNet b0..b7, not {variant!r}")
    names = [f"efficientnet{variant}.h5", f"efficientnet{variant}_notop.h5"]
    if not include_top:
        names.reverse()
    if strict:
        names = names[:1]
    folder = keras_cache_dir()
    for name in names:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    raise UserError(
        f"ImageNet weights for EfficientNet-{variant.upper()} are not on this machine and effscale never downloads: "
        f"put {names[0]} (from {KERAS_WEIGHTS_URL}{names[0]}, or let keras.applications.EfficientNet"
        f"{variant.upper()}(weights='imagenet') cache it) at {os.path.join(folder, names[0])}, or pass its path")


def read_weights(source) -> tuple[dict, str]:
    """``({canonical layer name: [numpy arrays]}, description)`` of a model or a weights file.

    >>> import effscale, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "w.weights.h5")
    >>> effscale.build("tiny", "w=0.25,d=0.5,r=32", classes=3).save_weights(path)
    >>> arrays, kind = read_weights(path)
    >>> [a.shape for a in arrays["predictions"]], kind
    ([(32, 3), (3,)], 'keras weights file')
    """
    if hasattr(source, "layers") and hasattr(source, "get_weights"):
        return ({name: [np.asarray(w) for w in layer.get_weights()]
                 for name, layer in canonical_layers(source).items()}, f"model {source.name!r}")
    path = os.fspath(source)
    if not os.path.exists(path):
        raise UserError(f"weights file {path!r} does not exist (keras caches ImageNet files under "
                        f"{keras_cache_dir()}/; effscale never downloads)")
    if os.path.isdir(path):
        candidate = os.path.join(path, "model.keras")
        if not os.path.isfile(candidate):
            raise UserError(f"{path!r} is a folder without model.keras: expected a .keras, .weights.h5 or .h5 file")
        path = candidate
    if path.endswith(".keras"):
        from effscale.model.keras_file import load_keras_model

        model = load_keras_model(path, "weights file")
        return read_weights(model)[0], "keras model file"
    if not path.endswith(".h5"):
        raise UserError(f"weights file {path!r}: expected a .keras, .weights.h5 or .h5 file")
    import h5py

    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        raise UserError(f"{path!r} is not an HDF5 weights file: {_first_line(error)}") from None
    with handle:
        if "layers" in handle and "layer_names" not in handle.attrs and "model_weights" not in handle:
            return _read_keras3(handle), "keras weights file"
        group = handle["model_weights"] if "model_weights" in handle else handle
        if "layer_names" not in group.attrs:
            raise UserError(f"{path!r} is an HDF5 file but not a Keras weights file (no layer names)")
        return _read_legacy(group), "legacy keras h5 file"


def _decode(value) -> str:
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def _read_legacy(group) -> dict:
    """keras.applications / Keras 2 layout: root attr ``layer_names``; each layer group has
    ``weight_names`` (paths of its datasets, in the layer's weight order)."""
    arrays, seen = {}, {}
    for raw in group.attrs["layer_names"]:
        name = _decode(raw)
        layer_group = group[name]
        weight_names = [_decode(w) for w in layer_group.attrs.get("weight_names", [])]
        if not weight_names:
            continue
        arrays[canonical_name(name, seen)] = [np.asarray(layer_group[w]) for w in weight_names]
    return arrays


def _read_keras3(handle) -> dict:
    """Keras 3 ``.weights.h5``: ``layers/<type>_<n>/vars/<i>`` with the layer's name in the
    ``vars`` group's ``name`` attribute. Groups come back in alphabetical order, so the
    auto-named preprocessing layers are ordered by their numeric suffix."""
    found = []
    for key in handle["layers"]:
        group = handle["layers"][key]
        if "vars" not in group or not len(group["vars"]):
            continue
        variables = group["vars"]
        name = _decode(variables.attrs.get("name", key))
        values = [np.asarray(variables[str(i)]) for i in range(len(variables))]
        found.append((name, values))

    def order(item):
        match = _AUTO_NAMED.match(item[0])
        return (0, match.group(1), int((match.group(2) or "_-1")[1:])) if match else (1, item[0], 0)

    arrays, seen = {}, {}
    for name, values in sorted(found, key=order):
        arrays[canonical_name(name, seen)] = values
    return arrays


def _first_line(error) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


# -- applying ---------------------------------------------------------------------------------

def _apply(arrays: dict, target, source_name: str) -> TransferReport:
    import keras

    report = TransferReport(source=source_name)
    targets = canonical_layers(target)
    for name, layer in targets.items():
        values = arrays.get(name)
        if values is None:
            report.missing.append(name)
            continue
        target_shapes = [tuple(w.shape) for w in layer.weights]
        if [v.shape for v in values] != target_shapes:
            report.mismatched.append(name)
            report.shapes[name] = ([v.shape for v in values], target_shapes)
            continue
        if isinstance(layer, keras.layers.Normalization) and _is_keras_imagenet_normalization(values):
            values = [values[0], np.square(values[1]).astype(values[1].dtype), *values[2:]]
            report.notes.append(f"{name}: source variance is the ImageNet stddev (keras' ImageNet file convention, "
                                "tensorflow/tensorflow#49930); loaded as stddev**2")
        layer.set_weights(values)
        report.transferred.append(name)
    report.unused = [name for name in arrays if name not in targets]
    refresh_normalization(target)
    return report


def refresh_normalization(model) -> int:
    """Make every Normalization layer of ``model`` use the statistics its weights hold.

    keras' Normalization computes its mean and variance tensors from its variables in
    ``finalize_state()``; calling it after weights change keeps them in step (effscale.training.train
    does the same). Returns how many layers were refreshed.

    >>> import effscale
    >>> refresh_normalization(effscale.build("tiny", "w=0.25,d=0.5,r=32", classes=3))
    1
    """
    import keras

    count = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Normalization) and layer.built:
            layer.finalize_state()
            count += 1
    return count


def _is_keras_imagenet_normalization(values) -> bool:
    if len(values) < 2 or values[0].shape != (3,):
        return False
    return (np.allclose(values[0], IMAGENET_MEAN, atol=1e-4) and np.allclose(values[1], IMAGENET_STDDEV, atol=1e-4))


def load_weights(model, source, *, exact: bool = False, skip: tuple = ()) -> TransferReport:
    """Load ``source`` into ``model`` layer by layer (name and shapes must match) and report.

    ``source`` is a ``keras.Model``, a ``.keras`` / ``.weights.h5`` / legacy ``.h5`` path (a
    training output folder with ``model.keras`` too), or ``"imagenet:bN"`` for keras' cached
    ImageNet file. ``exact=True`` raises a UserError unless every layer on both sides matched
    (the architectures are the same). ``skip`` names target layers to leave as they are.

    >>> import effscale
    >>> b0 = effscale.build("tiny", "w=0.5,d=0.5,r=32", classes=3)
    >>> wider = effscale.build("tiny", "w=0.75,d=0.5,r=32", classes=3)
    >>> report = load_weights(wider, b0)
    >>> "normalization" in report.transferred, "stem_conv" in report.mismatched
    (True, True)
    >>> load_weights(wider, b0, exact=True)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    effscale.common.errors.UserError: weights from model 'effscale_w0_5_d0_5_r32' do not match exactly: ...
    """
    description = None
    if isinstance(source, str) and source.startswith("imagenet"):
        match = _IMAGENET.match(source)
        if not match:
            raise UserError(f"weights {source!r}: expected 'imagenet', 'imagenet:bN' or 'imagenet:bN:notop'")
        variant = match.group(1)
        if variant is None:
            found = re.fullmatch(r"effscale_(b[0-7])", model.name)
            if not found:
                raise UserError(f"cannot tell which EfficientNet model {model.name!r} is: pass 'imagenet:bN'")
            variant = found.group(1)
        include_top = match.group(2) == "top" or (match.group(2) is None and _has_imagenet_head(model))
        source = imagenet_weights_path(variant, include_top=include_top)
        description = f"ImageNet EfficientNet-{variant.upper()} ({os.path.basename(source)})"
    arrays, kind = read_weights(source)
    if description is None:
        description = kind if kind.startswith("model") else f"{kind} {os.fspath(source)}"
    if skip:
        arrays = {k: v for k, v in arrays.items() if k not in set(skip)}
    if exact:
        shapes = {name: [tuple(w.shape) for w in layer.weights] for name, layer in canonical_layers(model).items()}
        problems = sorted(set(shapes) ^ set(arrays)) + sorted(
            n for n in set(shapes) & set(arrays) if [v.shape for v in arrays[n]] != shapes[n])
        if problems:
            raise UserError(f"weights from {description} do not match exactly: {len(problems)} layer(s) differ "
                            f"({', '.join(problems[:5])}{', ...' if len(problems) > 5 else ''})")
    return _apply(arrays, model, description)


def _has_imagenet_head(model) -> bool:
    try:
        return int(model.get_layer("predictions").units) == 1000
    except (ValueError, AttributeError):
        return False
