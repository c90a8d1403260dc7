"""Benchmark of the lookup page's slow hash (not a test): what a lookup and a guess cost.

Prints, for PBKDF2-HMAC-SHA256 at the page's rounds (evalkit.delivery.publish.DEFAULT_ITERATIONS,
or --iterations N):
  1. one lookup in headless Chromium (WebCrypto deriveBits, and the plain-JavaScript fallback),
     via tests/webdriver.py: the number that must stay under 0.5 s;
  2. guesses per second per core in Python's hashlib (OpenSSL), an attacker's cheapest tool
     without a GPU, and what that means for recovering one code or every code of a page.

Run: .venv/bin/python bench/lookup_codes.py [--iterations N]
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from evalkit.allocation.keys import CODE_BITS  # noqa: E402
from evalkit.delivery.publish import DEFAULT_ITERATIONS, DIGEST_BYTES  # noqa: E402

NATIONAL_STAFF = 18_752
PAGE_SCRIPT = (ROOT / "evalkit/delivery/templates/publish/page.js").read_text(encoding="utf-8")
TIMED = """
var done = arguments[arguments.length - 1], page = window.evalkitPage;
var salt = "00112233445566778899aabbccddeeff", started = performance.now();
var run = arguments[1] ? Promise.resolve().then(function () {
  return page.pbkdf2Fallback(page.utf8Bytes("K7QX29MD"), page.hexBytes(salt), arguments[0], 128);
}.bind(null, arguments[0])) : page.pbkdf2Hex("K7QX29MD", salt, arguments[0], 128);
run.then(function () { done(performance.now() - started); });
"""


def browser_lookup_ms(iterations: int, fallback: bool, repeats: int = 5) -> float:
    """Median milliseconds of one lookup hash in headless Chromium."""
    from webdriver import Browser, find_browser

    folder = Path(tempfile.mkdtemp())
    page = folder / "page.html"
    page.write_text('<!DOCTYPE html><form id="staff-form"></form><div id="course-tabs"></div>'
                    '<input id="pdu-search"><p id="search-status"></p>'
                    f"<script>{PAGE_SCRIPT}</script>", encoding="utf-8")
    browser = Browser(*find_browser())
    try:
        browser.get(page.as_uri())
        times = [browser.execute_async(TIMED, iterations, fallback) for _ in range(repeats)]
    finally:
        browser.quit()
    return statistics.median(times)


def python_guesses_per_second(iterations: int, seconds: float = 3.0) -> float:
    """PBKDF2 guesses per second on one core with hashlib."""
    salt, done, started = bytes(16), 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        hashlib.pbkdf2_hmac("sha256", b"K7QX%04d" % done, salt, iterations, DIGEST_BYTES)
        done += 1
    return done / (time.perf_counter() - started)


def _duration(seconds: float) -> str:
    for unit, size in (("years", 365.25 * 86400), ("days", 86400), ("hours", 3600),
                       ("minutes", 60)):
        if seconds >= size:
            return f"{seconds / size:,.1f} {unit}"
    return f"{seconds:.1f} s"


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=DEFAULT_ITERATIONS)
    rounds = parser.parse_args().iterations
    print(f"PBKDF2-HMAC-SHA256, {rounds:,} rounds, {8 * DIGEST_BYTES}-bit digests, "
          f"{CODE_BITS}-bit codes")
    print(f"  Chromium WebCrypto lookup:   {browser_lookup_ms(rounds, False):8.0f} ms")
    print(f"  Chromium JavaScript fallback:{browser_lookup_ms(rounds, True, 3):8.0f} ms")
    rate = python_guesses_per_second(rounds)
    space = 2 ** CODE_BITS
    print(f"  Python hashlib: {rate:,.1f} guesses/s per core")
    print(f"  first code of a {NATIONAL_STAFF:,}-code page (expected): "
          f"{_duration(space / (NATIONAL_STAFF + 1) / rate)} on one core")
    print(f"  every code (search the whole space): {_duration(space / rate)} on one core")
    print(f"  publishing {NATIONAL_STAFF:,} new codes: {_duration(NATIONAL_STAFF / rate)} "
          "on one core")


if __name__ == "__main__":
    main()
