"""Power stage: design-stage power, MDES and sample size for the trial design.

Takes the design (and, for `--config`, the roster and the allocation algorithm) and gives
out analytic MDES, power or clusters needed in PowerUp!'s forms (`analytic`), the real
design's contrasts (`design_inputs`), simulated power of the exact design (`simulate`),
`power.json` and an HTML page of power curves (`report`), and the MDES of the allocation
actually drawn (`randomisation`). It imports allocation, never analysis.
"""
