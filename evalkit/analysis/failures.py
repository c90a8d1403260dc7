"""Why an estimator could not give an answer: exceptions shared by the estimators and run.py.

They live here, not beside their estimators, so that `analyse_frame` can catch them without
importing every estimator (and statsmodels, scipy) when one model is asked for.
"""

from __future__ import annotations


class ModelFitError(RuntimeError):
    """The mixed model could not be fitted reliably (no sound REML optimum was found)."""


class GEEConvergenceError(RuntimeError):
    """The GEE iterations did not reach the requested tolerance."""
