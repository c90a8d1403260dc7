"""`refresh`: rebuild every derived artefact of a run folder from its register.

The allocation exports always; booking windows and calendars, guidance and briefings, and the
lookup page when they had been made. Used by `evalkit refresh RUN` and, automatically, by the
next command after one that was killed between its register commit and its files.
"""

from __future__ import annotations

from pathlib import Path

from evalkit.delivery.guidance import run_guidance
from evalkit.delivery.windows import run_windows
from evalkit.register import Register, writing
from evalkit.turnover.events import regenerate_outputs

WINDOWS_MARKER = "booking_windows.csv"
GUIDANCE_MARKER = "guidance.html"


def refresh(directory: Path) -> dict[str, Path]:
    """Rebuild the derived files (under the folder lock) and log a `refreshed` event."""
    directory = Path(directory)
    Register.open(directory)
    with writing(directory, "refresh") as register:
        files = dict(regenerate_outputs(register, directory))
        if (directory / WINDOWS_MARKER).exists():
            files.update({f"windows:{k}": v for k, v in run_windows(directory)[1].items()})
        if (directory / GUIDANCE_MARKER).exists():
            files.update({f"guidance:{k}": v for k, v in run_guidance(directory)[1].items()})
        register.append_event("refreshed", detail={
            "files": sorted(Path(p).name for p in files.values()),
            "after_interrupted": register.interrupted or {}})
    return files
