"""Privacy of the staff-level lookup page: what a determined colleague can get out of it.

The page holds PBKDF2 hashes of personal lookup codes (40 random bits each). The old page
hashed staff IDs (S + 6 digits), so hashing every candidate ID recovered everyone's group;
these tests run that attack, and others, against the new page.
"""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from evalkit.allocation.keys import CODE_BITS, new_lookup_code, normalise_lookup_code
from evalkit.delivery.publish import (
    DEFAULT_ITERATIONS,
    DIGEST_BYTES,
    lookup_codes_for,
    lookup_digest,
    render_page,
)
from evalkit.register import Register

OLD_ID_SPACE = 1_000_000  # S000000 .. S999999


@pytest.fixture(scope="module")
def attacked_page(staff_level_run):
    """The national staff-level page with ONE PBKDF2 round: the cheapest possible for an
    attacker (the real page uses DEFAULT_ITERATIONS), so a bounded search is feasible here."""
    register = Register.open(staff_level_run.directory)
    staff = register.table("staff_allocation")
    codes = lookup_codes_for(staff["staff_id"], iterations=1)
    html = render_page(register.design, register.table("allocation"), staff, codes)
    index = json.loads(re.search(r'id="staff-index">(.*?)</script>', html, re.S).group(1))
    return {"index": index, "codes": codes, "staff": staff, "html": html}


def _guess(index: dict, text: str) -> str:
    return hashlib.pbkdf2_hmac("sha256", text.encode(), bytes.fromhex(index["salt"]),
                               index["iterations"], DIGEST_BYTES).hex()


def test_no_hash_is_recovered_by_searching_the_whole_old_id_space(attacked_page) -> None:
    index = attacked_page["index"]
    hashes = set(index["hashes"])
    hits = [n for n in range(OLD_ID_SPACE) if _guess(index, f"S{n:06d}") in hashes]
    assert hits == []
    for staff_id in attacked_page["staff"]["staff_id"]:  # and the real IDs in any case
        assert _guess(index, staff_id) not in hashes
        assert _guess(index, staff_id.lower()) not in hashes
    # the same search does find the real codes: the attack itself works
    real = attacked_page["codes"].table["code"].head(200)
    assert all(_guess(index, normalise_lookup_code(code)) in hashes for code in real)


def test_the_page_does_not_hold_the_old_salted_sha256_of_any_staff_id(attacked_page) -> None:
    index, html = attacked_page["index"], attacked_page["html"]
    for staff_id in attacked_page["staff"]["staff_id"].head(500):
        for salt in (index["salt"], ""):
            assert hashlib.sha256((salt + staff_id).encode()).hexdigest() not in html


def test_every_person_has_their_own_hash_even_with_ids_differing_only_in_case() -> None:
    import pandas as pd

    codes = lookup_codes_for(pd.Series(["S000001", "s000001", "S000002"]), iterations=1)
    assert codes.table["digest"].is_unique
    assert codes.table["code"].is_unique


def test_codes_are_40_random_bits_from_the_operating_system() -> None:
    assert CODE_BITS >= 40
    drawn = {normalise_lookup_code(new_lookup_code()) for _ in range(5000)}
    assert len(drawn) == 5000
    # every character position uses the whole 32-symbol alphabet
    for position in range(8):
        assert len({code[position] for code in drawn}) == 32


def test_default_rounds_make_a_guess_slow_for_python() -> None:
    """One guess at the page's rounds costs milliseconds (a salted SHA-256 cost ~1 us)."""
    import time

    started = time.perf_counter()
    lookup_digest("K7QX-29MD", bytes(16), DEFAULT_ITERATIONS)
    assert time.perf_counter() - started > 0.005
