"""Stage 1: roster in, sealed allocation out.

Takes the design and the PDU and staff rosters (`roster`), builds the units, randomises them
within strata (`randomise`, `allocate`), checks balance (`balance`), draws the concealed
sequence for new joiners (`joiner_sequence`), seals everything in the register (`assign`) and
exports the allocation as CSV and XLSX (`exports`).
"""
