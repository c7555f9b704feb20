"""Move weights between Keras models by layer name.

keras.applications leaves its preprocessing layers unnamed, so Keras numbers them per
process (``normalization_3``); those are matched by type and order instead.

>>> import effscale
>>> a = effscale.build("tiny", "w=0.5,d=0.5,r=32", classes=3)
>>> b = effscale.build("tiny", "w=0.5,d=0.5,r=32", classes=3)
>>> report = transfer_weights(a, b)
>>> report.mismatched, report.missing
([], [])
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_AUTO_NAMED = re.compile(r"^(rescaling|normalization)(_\d+)?$")


@dataclass
class TransferReport:
    transferred: list[str] = field(default_factory=list)   # name and every shape matched
    mismatched: list[str] = field(default_factory=list)    # name matched, a shape did not
    missing: list[str] = field(default_factory=list)       # target layer with no source layer

    def to_dict(self) -> dict:
        return {"transferred": self.transferred, "mismatched": self.mismatched, "missing": self.missing}


def canonical_layers(model) -> dict:
    """Layers with weights, keyed by name; auto-named preprocessing layers by type and order."""
    layers, seen = {}, {}
    for layer in model.layers:
        if not layer.weights:
            continue
        match = _AUTO_NAMED.match(layer.name)
        if match:
            base = match.group(1)
            ordinal = seen.get(base, 0)
            seen[base] = ordinal + 1
            layers[base if ordinal == 0 else f"{base}_{ordinal}"] = layer
        else:
            layers[layer.name] = layer
    return layers


def transfer_weights(source, target) -> TransferReport:
    """Copy every layer whose name and weight shapes match from ``source`` into ``target``."""
    source_layers = canonical_layers(source)
    report = TransferReport()
    for name, layer in canonical_layers(target).items():
        other = source_layers.get(name)
        if other is None:
            report.missing.append(name)
            continue
        weights = other.get_weights()
        if [w.shape for w in weights] != [tuple(w.shape) for w in layer.weights]:
            report.mismatched.append(name)
            continue
        layer.set_weights(weights)
        report.transferred.append(name)
    return report
