"""evalkit: run a randomised evaluation of a staff learning programme end to end.

Stages, one module each: roster -> randomise (allocation) -> register -> windows and guidance
-> monitor -> analysis.
"""

__version__ = "0.1.0"
