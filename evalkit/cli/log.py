"""Commands for the audit trail: the event log (`log`) and the allocation certificate.

Also the front-door hook: after every command that changes a run folder, the CLI rebuilds
the folder's `index.html` (and, after `verify`, `certificate.html`), so both are current.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from evalkit.cli.common import console, error_console, frame_table
from evalkit.errors import EvalkitError

RunDirectory = Annotated[Path, typer.Argument(help="Output folder holding register.sqlite.")]
# Which argument names the run folder, for each command that changes one.
RUN_FOLDER_ARGUMENT = {"assign": "out", "verify": "directory", "windows": "directory",
                       "guidance": "directory", "publish": "directory", "enrol": "directory",
                       "transfer": "directory", "monitor": "directory", "analyse": "register",
                       "refresh": "directory", "log": "directory", "certificate": "directory",
                       "power": "out"}
REFRESHES_CERTIFICATE = {"verify", "enrol", "transfer", "refresh"}


def log(
    directory: RunDirectory,
    limit: Annotated[int | None, typer.Option(help="Show only the newest N events.")] = None,
) -> None:
    """Show who did what, when and why; write events.csv and events.xlsx.

    The register's append-only event log as a table: time, who (OS user and host), command,
    what changed and the reason given.

    Example: evalkit log outputs/seeds2
    """
    import pandas as pd

    from evalkit.audit.log import write_event_log

    events, files = write_event_log(directory)
    shown = events if limit is None else events.tail(limit)
    table = pd.DataFrame({
        "#": shown["id"].astype(str), "Time (UTC)": shown["time"].str[:16].str.replace("T", " "),
        "Who": [f"{u}@{h}" if u and h else u or h or "not recorded"
                for u, h in zip(shown["user"], shown["host"], strict=True)],
        "Command": shown["command"], "What changed": shown["what_changed"],
        "Reason": shown["reason"]})
    if not table["Command"].astype(bool).any():
        table = table.drop(columns="Command")
    console.print(frame_table(table, f"Event log: {len(events)} event(s)"))
    console.print(f"wrote {files['csv']}\nwrote {files['xlsx']}")


def certificate(directory: RunDirectory) -> None:
    """Write the allocation certificate (certificate.html, one A4 page).

    Trial, seed, algorithm, input fingerprints, seal receipt, counts per stratum and group,
    and the latest verify result. `evalkit verify` refreshes it too.

    Example: evalkit certificate outputs/seeds2
    """
    from evalkit.audit.certificate import write_certificate

    console.print(f"wrote {write_certificate(directory)}")


def _run_folder(name: str, arguments: dict[str, Any]) -> Path | None:
    value = arguments.get(RUN_FOLDER_ARGUMENT.get(name, ""))
    if value is None and name == "assign":
        from evalkit.allocation.assign import default_output
        from evalkit.trial.design import load_design

        try:
            return default_output(load_design(arguments["config"]))
        except EvalkitError:
            return None
    return Path(value) if value is not None else None


def refresh_front_door(name: str, folder: Path | None,
                       started: float | None = None) -> Path | None:
    """Rebuild index.html (and the certificate after verify) in a sealed run folder."""
    if folder is None:  # before the imports: commands with no run folder don't pay for them
        return None
    from evalkit.audit.index_page import INDEX_FILE, INDEX_MARKER, write_index
    from evalkit.register import is_sealed

    if not is_sealed(folder):
        return None
    try:
        if name in REFRESHES_CERTIFICATE:  # only then its imports (the event log, XLSX)
            from evalkit.audit.certificate import write_certificate

            write_certificate(folder)
        existing = folder / INDEX_FILE
        if existing.exists() and INDEX_MARKER not in existing.read_text("utf-8", "replace"):
            error_console.print(f"[yellow]note:[/] {existing} is not evalkit's front door; "
                                "left as it is")
            return None
        return write_index(folder, fresh_since=started)
    except (EvalkitError, OSError, ValueError, KeyError) as problem:
        error_console.print(f"[yellow]note:[/] {folder / INDEX_FILE} not refreshed: {problem}")
        return None


def refreshing(name: str, command: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a command so the run folder's front door is rebuilt after it (also on exit 1)."""
    if name not in RUN_FOLDER_ARGUMENT:
        return command

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.time()  # files modified after this were written by this command
        try:
            result = command(*args, **kwargs)
        except typer.Exit as stop:
            if stop.exit_code == 1:  # a check failed (verify mismatch): still worth showing
                refresh_front_door(name, _run_folder(name, kwargs), started)
            raise
        index = refresh_front_door(name, _run_folder(name, kwargs), started)
        if index is not None:
            console.print(f"Front door: {index}")
        return result

    return wrapper


COMMANDS = {"log": log, "certificate": certificate}
