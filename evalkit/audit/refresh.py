"""`refresh`: rebuild every derived artefact of a run folder from its register.

The allocation exports always; booking windows and calendars, guidance and briefings, and the
lookup page when they had been made. Used by `evalkit refresh RUN` and, automatically, by the
next command after one that was killed between its register commit and its files.
"""

from __future__ import annotations

from pathlib import Path

from evalkit.register import Register, writing
from evalkit.turnover.events import regenerate_outputs


def refresh(directory: Path) -> dict[str, Path]:
    """Rebuild the derived files (under the folder lock) and log a `refreshed` event."""
    directory = Path(directory)
    Register.open(directory)
    with writing(directory, "refresh") as register:
        files = dict(regenerate_outputs(register, directory))
        register.append_event("refreshed", detail={
            "files": sorted(Path(p).name for p in files.values()),
            "after_interrupted": register.interrupted or {}})
    return files
