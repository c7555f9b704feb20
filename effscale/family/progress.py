"""Family-level progress: which stage, which variant of how many, time spent and left.

The remaining-time estimate weighs each unfinished training by its multiply-adds times its
epochs, using the rate measured on the variants already trained in this process.

>>> import io
>>> out = io.StringIO()
>>> progress = FamilyProgress(stream=out, clock=iter(range(0, 1000, 10)).__next__)
>>> progress.plan_training({"a": 1.0, "b": 3.0})
>>> progress.start("train", "a")
>>> progress.finish("train", "a")
>>> "remaining ~" in out.getvalue()
True
"""

from __future__ import annotations

import sys
import time


def format_seconds(seconds: float) -> str:
    """``1:05`` style, hours when needed.

    >>> format_seconds(65), format_seconds(3725)
    ('1:05', '1:02:05')
    """
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class FamilyProgress:
    def __init__(self, quiet: bool = False, stream=None, clock=time.monotonic):
        self.quiet = quiet
        self.stream = stream or sys.stdout
        self.clock = clock
        self.started = clock()
        self.work: dict[str, float] = {}       # variant -> relative training work
        self.done_work = 0.0
        self.training_seconds = 0.0
        self.finished: set[str] = set()
        self._current = None

    def plan_training(self, work: dict[str, float]) -> None:
        self.work = dict(work)

    def _remaining(self) -> str:
        left = sum(w for name, w in self.work.items() if name not in self.finished)
        if not self.done_work or not left:
            return ""
        return f" | remaining ~{format_seconds(self.training_seconds / self.done_work * left)}"

    def say(self, message: str) -> None:
        if not self.quiet:
            print(f"[effscale {format_seconds(self.clock() - self.started)}] {message}", file=self.stream, flush=True)

    def start(self, stage: str, name: str = "") -> None:
        self._current = (stage, name, self.clock())
        if stage == "train":
            names = list(self.work)
            position = f" (variant {names.index(name) + 1} of {len(names)})" if name in names else ""
            self.say(f"training {name}{position}{self._remaining()}")
        else:
            self.say(f"{stage} {name}".rstrip() + " ...")

    def skip(self, stage: str, name: str = "") -> None:
        if stage == "train":
            self.finished.add(name)
        self.say(f"{stage} {name}".rstrip() + ": already done, skipped")

    def finish(self, stage: str, name: str = "", summary: str = "", seconds: float | None = None) -> None:
        """Say a stage is done and how long it took (``seconds`` as recorded, so that the report
        shows the very time printed here; else measured since :meth:`start`)."""
        started = self._current[2] if self._current else self.clock()
        spent = self.clock() - started if seconds is None else seconds
        if stage == "train":
            self.finished.add(name)
            self.done_work += self.work.get(name, 0.0)
            self.training_seconds += spent
        self.say(f"{stage} {name}".rstrip() + f" done in {format_seconds(spent)}"
                 + (f": {summary}" if summary else "") + (self._remaining() if stage == "train" else ""))
