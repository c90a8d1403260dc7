"""Outcome analysis that respects the trial design (clusters, strata, purposive units)."""
