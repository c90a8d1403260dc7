"""The concealed allocation sequence for new starters in a staff-level design.

Derived from a secret key kept outside the run folder (`assign --key-file`; see
evalkit.allocation.keys), never from the public seed: one sequence per stratum of permuted
blocks of random size (1x or 2x the sum of the arm ratios), each block balanced by the ratios.
A joiner takes the next unused slot of their stratum, so nobody can steer a new starter into a
group. The register stores only a commitment per slot, HMAC(key, stratum|slot|group), and the
key's fingerprint: reading `register.sqlite` does not reveal which group the next slot holds
(nor where blocks end), while anyone given the key can check every slot and every joiner.

Extension is deterministic: round k gives every stratum another `slots_per_round` slots,
drawn (strata in sorted order) from the stream after round k-1, so a longer sequence always
starts with the shorter one.
"""

from __future__ import annotations

import math

import pandas as pd

from evalkit.allocation.allocate import stratum_keys
from evalkit.allocation.keys import derived_seed, key_fingerprint, slot_commitments
from evalkit.allocation.randomise import RandomStream
from evalkit.errors import InputError
from evalkit.trial.design import TrialDesign

JOINER_PURPOSE = 2
MIN_SLOTS_PER_STRATUM = 200
SHARE_OF_STRATUM = 0.25
BLOCK_MULTIPLIERS = (1, 2)
SEQUENCE_TABLE = "joiner_sequence"
SEQUENCE_COLUMNS = ["stratum", "slot", "commitment", "used_by", "used_at"]
KEY_META = "joiner_key"


def slots_per_round(stratum_size: int) -> int:
    """Slots added per round: 200 or a quarter of the stratum, whichever is larger."""
    return max(MIN_SLOTS_PER_STRATUM, math.ceil(SHARE_OF_STRATUM * stratum_size))


def stratum_sizes(design: TrialDesign, allocation: pd.DataFrame) -> dict[str, int]:
    """Units per stratum key in the sealed allocation table."""
    keys = stratum_keys(allocation, design.trial.strata)
    return {str(key): int(size) for key, size in keys.value_counts().sort_index().items()}


def _shuffled_block(stream: RandomStream, arms: list[str], ratios: list[int]) -> list[str]:
    """One block: a random multiple of the ratios, in a uniformly random order."""
    draw = stream.below_one
    multiplier = BLOCK_MULTIPLIERS[draw(len(BLOCK_MULTIPLIERS))]
    block = [arm for arm, ratio in zip(arms, ratios, strict=True)
             for _ in range(ratio * multiplier)]
    for position in range(len(block) - 1, 0, -1):
        other = draw(position + 1)
        block[position], block[other] = block[other], block[position]
    return block


def generate_sequence(design: TrialDesign, sizes: dict[str, int], key: bytes,
                      rounds: int = 1) -> pd.DataFrame:
    """Every stratum's slots for `rounds` rounds: stratum, slot (from 1), block, group."""
    arms = [arm.name for arm in design.randomised_arms]
    ratios = [arm.ratio for arm in design.randomised_arms]
    stream = RandomStream(derived_seed(key, "joiner sequence"), purpose=JOINER_PURPOSE)
    slots: dict[str, list[str]] = {stratum: [] for stratum in sorted(sizes)}
    block_of: dict[str, list[int]] = {stratum: [] for stratum in slots}
    for _ in range(rounds):
        for stratum, groups in slots.items():
            blocks, target = block_of[stratum], len(groups) + slots_per_round(sizes[stratum])
            while len(groups) < target:
                block = _shuffled_block(stream, arms, ratios)
                blocks.extend([(blocks[-1] if blocks else 0) + 1] * len(block))
                groups.extend(block)
    lengths = [len(groups) for groups in slots.values()]
    return pd.DataFrame({  # stratum by stratum (sorted), slots in order: no sort needed
        "stratum": [stratum for stratum, n in zip(slots, lengths, strict=True)
                    for _ in range(n)],
        "slot": [slot for n in lengths for slot in range(1, n + 1)],
        "block": [block for blocks in block_of.values() for block in blocks],
        "group": [group for groups in slots.values() for group in groups]})


def commit(frame: pd.DataFrame, key: bytes) -> pd.DataFrame:
    """The stored form of slots: their commitments instead of their groups and blocks."""
    commitments = slot_commitments(key, list(map(str, frame["stratum"].tolist())),
                                   frame["slot"].tolist(), list(map(str, frame["group"].tolist())))
    return frame.assign(commitment=commitments, used_by=frame.get("used_by", ""),
                        used_at=frame.get("used_at", ""))[SEQUENCE_COLUMNS]


def joiner_sequence_table(design: TrialDesign, allocation: pd.DataFrame, key: bytes,
                          rounds: int = 1) -> pd.DataFrame:
    """The register table: committed slots with empty `used_by`/`used_at` columns."""
    return commit(generate_sequence(design, stratum_sizes(design, allocation), key, rounds), key)


def joiner_tables(design: TrialDesign, allocation: pd.DataFrame,
                  key: bytes | None) -> dict[str, pd.DataFrame]:
    """Extra register tables created at `assign`: the sequence, for staff-level designs only."""
    if design.trial.unit != "staff":
        return {}
    if key is None:
        raise missing_key("assign")
    return {SEQUENCE_TABLE: joiner_sequence_table(design, allocation, key)}


def missing_key(command: str) -> InputError:
    """The error for a staff-level command run without --key-file."""
    created = " (kept outside the run folder; created if absent)" if command == "assign" else \
        " (the file `evalkit assign --key-file` created, kept outside the run folder)"
    return InputError(f"this is a staff-level design: joiners take slots of a sequence "
                      f"concealed with a secret key, so `{command}` needs --key-file PATH"
                      f"{created}", column="--key-file")


def joiner_meta(design: TrialDesign, key: bytes | None) -> dict[str, dict[str, str]]:
    """Register metadata at `assign`: the key's fingerprint (staff-level designs only)."""
    if design.trial.unit != "staff" or key is None:
        return {}
    return {KEY_META: {"fingerprint": key_fingerprint(key)}}


def check_key(recorded: dict | None, key: bytes, key_file: object = None) -> None:
    """InputError unless `key` is the one whose fingerprint the register recorded."""
    if recorded is None or recorded.get("fingerprint") != key_fingerprint(key):
        raise InputError("this key file is not the one this run was sealed with (its "
                         "fingerprint differs from the register's); use the key file "
                         "`evalkit assign --key-file` wrote for this run", file=key_file)


def reveal(design: TrialDesign, allocation: pd.DataFrame, stored: pd.DataFrame,
           key: bytes) -> pd.DataFrame:
    """The stored slots with their groups recomputed from the key (commitments checked)."""
    plain = sequence_covering(design, allocation, stored.groupby("stratum").size().to_dict(),
                              key)
    merged = stored.merge(plain[["stratum", "slot", "group"]], on=["stratum", "slot"],
                          how="left")
    expected = commit(merged.fillna({"group": ""}), key)["commitment"]
    if (expected != merged["commitment"]).any():
        raise InputError("the register's joiner sequence does not match this key: the "
                         "sequence was altered; run `evalkit verify --key-file` for details")
    return merged


def extended_sequence(design: TrialDesign, allocation: pd.DataFrame,
                      revealed: pd.DataFrame, key: bytes) -> pd.DataFrame:
    """A revealed sequence plus one more round for every stratum (usage kept)."""
    rounds = _rounds_in(design, allocation, revealed, key) + 1
    longer = generate_sequence(design, stratum_sizes(design, allocation), key, rounds)
    keyed = longer.drop(columns="block").assign(used_by="", used_at="") \
        .set_index(["stratum", "slot"])
    usage = revealed.set_index(["stratum", "slot"])[["used_by", "used_at"]]
    keyed.loc[usage.index, ["used_by", "used_at"]] = usage
    return keyed.reset_index()


def _rounds_in(design: TrialDesign, allocation: pd.DataFrame, stored: pd.DataFrame,
               key: bytes) -> int:
    """How many rounds a stored sequence holds (by its length)."""
    sizes = stratum_sizes(design, allocation)
    rounds = 1
    while len(generate_sequence(design, sizes, key, rounds)) < len(stored):
        rounds += 1
    return rounds


def sequence_covering(design: TrialDesign, allocation: pd.DataFrame | None,
                      needed: dict[str, int], key: bytes,
                      sizes: dict[str, int] | None = None) -> pd.DataFrame:
    """The shortest recomputed sequence with at least `needed[stratum]` slots in each stratum
    (`sizes`: the allocation's `stratum_sizes`, when already counted)."""
    sizes = stratum_sizes(design, allocation) if sizes is None else sizes
    rounds = 1
    while True:
        frame = generate_sequence(design, sizes, key, rounds)
        lengths = frame.groupby("stratum").size()
        if all(lengths.get(s, 0) >= n for s, n in needed.items() if s in sizes):
            return frame
        rounds += 1
