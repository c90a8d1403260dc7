"""Checks that the sealed record is what it claims to be.

Takes a run folder and recomputes the allocation from its manifest, design and inputs
(`verify`), and replays joiners and transfers against the concealed sequence (`replay`).
"""
