"""Every CLI command that writes into a run folder runs under its lock (one writer at a time),
records who ran it, and first heals a folder a killed command left with stale files."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from evalkit.cli.common import error_console
from evalkit.io.runfolder import kill_point, set_command

WRITERS = {"windows", "guidance", "publish", "enrol", "transfer", "monitor", "refresh", "log",
           "certificate", "verify"}


def locked(name: str, command: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a command: lock its run folder, heal an interrupted one, then run it."""
    if name not in WRITERS:
        return command

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from evalkit.register import register_path, writing

        set_command(" ".join(["evalkit", *sys.argv[1:]]))
        folder = kwargs.get("directory")
        if folder is None or not register_path(folder).exists() or not _writable(Path(folder)):
            return command(*args, **kwargs)  # nothing to lock (or read-only: verify only reads)
        with writing(Path(folder), name, mark=name != "verify") as register:
            if register is not None and register.interrupted and name not in {"refresh",
                                                                               "verify"}:
                error_console.print(f"[yellow]note:[/] an earlier command "
                                    f"({register.interrupted.get('command', '?')}) was "
                                    "interrupted; rebuilding the derived files first")
                from evalkit.audit.refresh import refresh  # only to heal: it imports every stage

                refresh(Path(folder))
            kill_point(f"{name}:start")
            result = command(*args, **kwargs)
            kill_point(f"{name}:done")  # files written, their hashes not yet recorded
            return result

    return wrapper


def _writable(folder: Path) -> bool:
    from evalkit.register import register_path

    return os.access(folder, os.W_OK) and os.access(register_path(folder), os.W_OK)
