"""One training setting of the proxy-fidelity check (:class:`ProxyTask`), as the command line
writes it: ``epochs=2,fraction=0.5,resolution=16,width=0.5,schedule=cosine,augment=padded-crop``
(every key optional).

>>> ProxyTask.parse("epochs=2,fraction=0.5,schedule=cosine").name
'e2-f0.5-r0-w1-cosine'
>>> ProxyTask.parse("epocs=2")
Traceback (most recent call last):
...
effscale.common.errors.UserError: proxy setting 'epocs=2': unknown key 'epocs' (expected epochs, fraction, resolution, width, schedule, augment)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from effscale.common.errors import UserError
from effscale.search.proxy import SCHEDULES

_KEYS = {"epochs": "epochs", "fraction": "train_fraction", "resolution": "resolution", "width": "width",
         "schedule": "schedule", "augment": "augment"}
AUGMENTATIONS = ("", "padded-crop", "resized-crop")  # "": none; the full setting only (trials train without)
LADDER_SPEARMAN = 0.5  # a multi-fidelity search's cheapest rung ranks at least this well against the full setting
DEFAULT_FULL = "epochs=6,schedule=cosine"
DEFAULT_GRID = ("epochs=1,schedule=constant", "epochs=1,schedule=cosine", "epochs=2,schedule=cosine",
                "epochs=2,fraction=0.5,schedule=cosine", "epochs=2,width=0.5,schedule=cosine")


@dataclass(frozen=True)
class ProxyTask:
    """One training setting of the check."""

    epochs: int = 1
    train_fraction: float = 1.0
    resolution: int = 0  # 0: the baseline's own, at most 64
    width: float = 1.0
    schedule: str = "cosine"
    augment: str = ""  # "padded-crop" / "resized-crop": the members' augmentation, for the full setting

    def __post_init__(self):
        if not (isinstance(self.epochs, int) and 1 <= self.epochs <= 1000):
            raise UserError(f"proxy setting epochs must be an integer in 1..1000, got {self.epochs!r}")
        if not 0 < self.train_fraction <= 1:
            raise UserError(f"proxy setting fraction must be in (0, 1], got {self.train_fraction!r}")
        if not (self.resolution == 0 or 8 <= self.resolution <= 1024):
            raise UserError(f"proxy setting resolution must be 0 (the baseline's) or 8..1024, got {self.resolution!r}")
        if not 0 < self.width <= 8:
            raise UserError(f"proxy setting width must be in (0, 8], got {self.width!r}")
        if self.schedule not in SCHEDULES:
            raise UserError(f"proxy setting schedule {self.schedule!r}: expected one of {', '.join(SCHEDULES)}")
        if self.augment not in AUGMENTATIONS:
            raise UserError(f"proxy setting augment {self.augment!r}: expected padded-crop or resized-crop")

    @property
    def name(self) -> str:
        """The setting's folder name (an augmented one ends in its augmentation).

        >>> ProxyTask(epochs=15, augment="padded-crop").name
        'e15-f1-r0-w1-cosine-padded-crop'
        """
        name = f"e{self.epochs}-f{self.train_fraction:g}-r{self.resolution}-w{self.width:g}-{self.schedule}"
        return f"{name}-{self.augment}" if self.augment else name

    @classmethod
    def parse(cls, text: str) -> "ProxyTask":
        from effscale.common.checks import parse_float, parse_int, shorten

        values = {}
        for part in [p.strip() for p in str(text).split(",") if p.strip()]:
            key, sep, value = part.partition("=")
            key = key.strip()
            if not sep or key not in _KEYS:
                raise UserError(f"proxy setting {shorten(text)}: unknown key {shorten(key)} "
                                f"(expected {', '.join(_KEYS)})")
            try:
                values[_KEYS[key]] = value.strip() if key in ("schedule", "augment") else (
                    parse_int(value, key) if key in ("epochs", "resolution") else parse_float(value, key))
            except UserError:
                raise UserError(f"proxy setting {shorten(text)}: {key}={shorten(value)} is not a number") from None
        return cls(**values)

    def resolved(self, baseline_resolution: int) -> "ProxyTask":
        return replace(self, resolution=self.resolution or min(baseline_resolution, 64))


def task_dict(task: ProxyTask) -> dict:
    """The setting as saved: without ``augment`` when there is none, as checks saved it before.

    >>> task_dict(ProxyTask(epochs=2))
    {'epochs': 2, 'train_fraction': 1.0, 'resolution': 0, 'width': 1.0, 'schedule': 'cosine'}
    """
    saved = asdict(task)
    if not saved["augment"]:
        del saved["augment"]
    return saved
