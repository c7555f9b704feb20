"""The family stage: search -> compound coefficients -> scale -> train every member -> report.

>>> from effscale.family import run_family
>>> callable(run_family)
True
"""

from effscale.family.pipeline import run_family

__all__ = ["run_family"]
