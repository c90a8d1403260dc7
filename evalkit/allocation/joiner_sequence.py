"""The concealed allocation sequence for new starters in a staff-level design.

Generated at `assign` time from the trial seed (RandomStream purpose 2), one sequence per
stratum: permuted blocks of random size (1x or 2x the sum of the arm ratios), each block
balanced by the ratios. A joiner takes the next unused slot of their stratum, so nobody can
steer a new starter into a group. The sequence is stored in the register and never printed.

Extension is deterministic: round k gives every stratum another `slots_per_round` slots,
drawn (strata in sorted order) from the stream after round k-1, so a longer sequence always
starts with the shorter one.
"""

from __future__ import annotations

import math

import pandas as pd

from evalkit.allocation.allocate import stratum_keys
from evalkit.allocation.randomise import RandomStream
from evalkit.trial.design import TrialDesign

JOINER_PURPOSE = 2
MIN_SLOTS_PER_STRATUM = 200
SHARE_OF_STRATUM = 0.25
BLOCK_MULTIPLIERS = (1, 2)
SEQUENCE_TABLE = "joiner_sequence"
SEQUENCE_COLUMNS = ["stratum", "slot", "block", "group", "used_by", "used_at"]


def slots_per_round(stratum_size: int) -> int:
    """Slots added per round: 200 or a quarter of the stratum, whichever is larger."""
    return max(MIN_SLOTS_PER_STRATUM, math.ceil(SHARE_OF_STRATUM * stratum_size))


def stratum_sizes(design: TrialDesign, allocation: pd.DataFrame) -> dict[str, int]:
    """Units per stratum key in the sealed allocation table."""
    keys = stratum_keys(allocation, design.trial.strata)
    return {str(key): int(size) for key, size in keys.value_counts().sort_index().items()}


def _shuffled_block(stream: RandomStream, arms: list[str], ratios: list[int]) -> list[str]:
    """One block: a random multiple of the ratios, in a uniformly random order."""
    multiplier = BLOCK_MULTIPLIERS[int(stream.below(len(BLOCK_MULTIPLIERS), 1)[0])]
    block = [arm for arm, ratio in zip(arms, ratios, strict=True)
             for _ in range(ratio * multiplier)]
    for position in range(len(block) - 1, 0, -1):
        other = int(stream.below(position + 1, 1)[0])
        block[position], block[other] = block[other], block[position]
    return block


def generate_sequence(design: TrialDesign, sizes: dict[str, int], rounds: int = 1
                      ) -> pd.DataFrame:
    """Every stratum's slots for `rounds` rounds: stratum, slot (from 1), block, group."""
    arms = [arm.name for arm in design.randomised_arms]
    ratios = [arm.ratio for arm in design.randomised_arms]
    stream = RandomStream(design.trial.seed, purpose=JOINER_PURPOSE)
    filled = dict.fromkeys(sizes, 0)
    blocks = dict.fromkeys(sizes, 0)
    rows = []
    for _ in range(rounds):
        for stratum in sorted(sizes):
            target = filled[stratum] + slots_per_round(sizes[stratum])
            while filled[stratum] < target:
                blocks[stratum] += 1
                for group in _shuffled_block(stream, arms, ratios):
                    filled[stratum] += 1
                    rows.append((stratum, filled[stratum], blocks[stratum], group))
    frame = pd.DataFrame(rows, columns=["stratum", "slot", "block", "group"])
    return frame.sort_values(["stratum", "slot"], kind="stable").reset_index(drop=True)


def joiner_sequence_table(design: TrialDesign, allocation: pd.DataFrame,
                          rounds: int = 1) -> pd.DataFrame:
    """The register table: the sequence with empty `used_by`/`used_at` columns."""
    frame = generate_sequence(design, stratum_sizes(design, allocation), rounds)
    return frame.assign(used_by="", used_at="")[SEQUENCE_COLUMNS]


def joiner_tables(design: TrialDesign, allocation: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Extra register tables created at `assign`: the sequence, for staff-level designs only."""
    if design.trial.unit != "staff":
        return {}
    return {SEQUENCE_TABLE: joiner_sequence_table(design, allocation)}


def extended_sequence(design: TrialDesign, allocation: pd.DataFrame,
                      stored: pd.DataFrame) -> pd.DataFrame:
    """The stored sequence plus one more round for every stratum (usage kept)."""
    rounds = _rounds_in(design, allocation, stored) + 1
    longer = joiner_sequence_table(design, allocation, rounds)
    usage = stored.set_index(["stratum", "slot"])[["used_by", "used_at"]]
    keyed = longer.set_index(["stratum", "slot"])
    keyed.loc[usage.index, ["used_by", "used_at"]] = usage
    return keyed.reset_index()[SEQUENCE_COLUMNS]


def _rounds_in(design: TrialDesign, allocation: pd.DataFrame, stored: pd.DataFrame) -> int:
    """How many rounds a stored sequence holds (by its first stratum's length)."""
    sizes = stratum_sizes(design, allocation)
    rounds = 1
    while len(generate_sequence(design, sizes, rounds)) < len(stored):
        rounds += 1
    return rounds


def sequence_covering(design: TrialDesign, allocation: pd.DataFrame,
                      needed: dict[str, int]) -> pd.DataFrame:
    """The shortest recomputed sequence with at least `needed[stratum]` slots in each stratum."""
    sizes = stratum_sizes(design, allocation)
    rounds = 1
    while True:
        frame = generate_sequence(design, sizes, rounds)
        lengths = frame.groupby("stratum").size()
        if all(lengths.get(s, 0) >= n for s, n in needed.items() if s in sizes):
            return frame
        rounds += 1
