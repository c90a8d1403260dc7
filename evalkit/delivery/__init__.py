"""Stage 2: sealed allocation in, what staff are told out.

Takes the register and gives each person's booking windows and calendars (`windows`,
`calendars`, `instructions`), course capacity (`capacity`), group guidance and PDU briefings
(`guidance`), the contamination risk report (`contamination`), staff lookup (`lookup`) and the
self-contained lookup page (`publish`).
"""
