"""One writer at a time in a run folder: an exclusive lock, left-over cleanup, and kill points.

Every command that writes into a run folder holds `folder_lock` for its whole run. The lock is
`fcntl.flock` on `DIR/.evalkit.lock`, so the kernel releases it when its holder dies (a killed
process never leaves a stale lock); the file records who holds it (command, user, host, pid,
time) for the "busy" message, and is removed on release. `DIR/.evalkit.pending` marks a
command rewriting derived files: one left behind means it was killed, and the next command
(or `evalkit refresh`) rebuilds them. A second writer waits `EVALKIT_LOCK_WAIT` seconds (default
10) and then exits 2. The lock is re-entrant within a process.

While it holds the lock a command is the only writer, so hidden temporary files and folders
left by a killed process (`.<name>.<8 chars>`, `.<name>.old`) are removed or restored.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import getpass
import json
import os
import re
import shutil
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from evalkit.errors import EvalkitError

LOCK_FILE = ".evalkit.lock"
PENDING_FILE = ".evalkit.pending"
DEFAULT_WAIT_SECONDS = 10.0
_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?P<tag>[A-Za-z0-9_]{8}|old)$")
_STAGING = re.compile(r"^\.(?P<name>.+)\.staging-(?P<host>[^-]+)-(?P<pid>\d+)-")
_held: dict[Path, tuple[int, int]] = {}  # lock path -> (fd, depth): re-entrant in a process
_command = ""


class FolderBusy(EvalkitError):
    """Another command is writing into the run folder (exit 2)."""


def set_command(text: str) -> None:
    """Name the command being run (the CLI sets `evalkit enrol ...`), for events and locks."""
    global _command
    _command = text


def who() -> dict[str, str]:
    """Who is running what: OS user, host and the command line."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    command = _command or " ".join(["evalkit", *sys.argv[1:]])
    return {"user": user, "host": socket.gethostname(), "command": command}


def kill_point(step: str) -> None:
    """Testing only: SIGKILL this process at `step` when EVALKIT_TEST_KILL_AT names it."""
    if os.environ.get("EVALKIT_TEST_KILL_AT") == step:
        os.kill(os.getpid(), signal.SIGKILL)


def _holder_text(handle) -> str:
    handle.seek(0)
    try:
        holder = json.loads(handle.read() or "{}")
    except ValueError:
        holder = {}
    if not holder:
        return "another evalkit command"
    return (f"{holder.get('command', '?')} by {holder.get('user', '?')}@{holder.get('host', '?')}"
            f" (pid {holder.get('pid', '?')}) since {holder.get('since', '?')}")


def _acquire(path: Path, wait: float):
    """Open and flock the lock file; retry if it was unlinked meanwhile (released)."""
    deadline = time.monotonic() + wait
    while True:
        handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - returned, held by caller
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder_text(handle)
            handle.close()
            if time.monotonic() >= deadline:
                raise FolderBusy(f"the run folder is busy: {holder}; try again when it has "
                                 "finished") from None
            time.sleep(0.05)
            continue
        try:
            same = os.fstat(handle.fileno()).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return handle
        handle.close()  # the holder removed this file as it released it: take the new one


@contextlib.contextmanager
def folder_lock(directory: Path, command: str = "") -> Iterator[None]:
    """Hold the run folder's exclusive lock; clean a dead writer's left-overs once held.

    The lock file exists only while held, so a command leaves the folder as it found it."""
    path = (Path(directory) / LOCK_FILE).resolve()
    if path in _held:
        fd, depth = _held[path]
        _held[path] = (fd, depth + 1)
        try:
            yield
        finally:
            _held[path] = (fd, _held[path][1] - 1)
        return
    wait = float(os.environ.get("EVALKIT_LOCK_WAIT", DEFAULT_WAIT_SECONDS))
    handle = _acquire(path, wait)
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(who() | {"command": command or who()["command"],
                                         "pid": os.getpid(), "since": _now()}))
        handle.flush()
        _held[path] = (handle.fileno(), 1)
        clean_leftovers(Path(directory))
        yield
    finally:
        _held.pop(path, None)
        path.unlink(missing_ok=True)  # before closing: the next holder re-checks the inode
        handle.close()  # closing the descriptor releases the flock


def mark_pending(directory: Path, command: str) -> None:
    """Note that a command is rewriting derived files (removed when it finishes)."""
    (Path(directory) / PENDING_FILE).write_text(json.dumps(
        {"command": command, "since": _now(), "pid": os.getpid()}), encoding="utf-8")


def pending(directory: Path) -> dict | None:
    """The marker a command killed while rewriting files left behind, or None."""
    try:
        return json.loads((Path(directory) / PENDING_FILE).read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        return None
    except ValueError:
        return {"command": "an evalkit command"}


def clear_pending(directory: Path) -> None:
    """The derived files are current again."""
    (Path(directory) / PENDING_FILE).unlink(missing_ok=True)


def _now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def clean_leftovers(directory: Path) -> list[str]:
    """Remove a dead writer's hidden temp files; put back a folder a swap left as `.X.old`.

    Only safe while holding the folder lock (every writer holds it).
    """
    cleaned = []
    for entry in Path(directory).iterdir():
        match = _LEFTOVER.match(entry.name)
        if not match or entry.name in {LOCK_FILE, PENDING_FILE}:
            continue
        original = entry.with_name(match["name"])
        if match["tag"] == "old" and not original.exists():
            entry.rename(original)  # killed mid-swap: the previous version is still whole
        elif entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        cleaned.append(entry.name)
    return cleaned


def staging_prefix(target: Path) -> str:
    """Name prefix of a staging folder for `target`: records host and pid for cleanup."""
    return f".{Path(target).name}.staging-{socket.gethostname().replace('-', '_')}-{os.getpid()}-"


def clean_dead_staging(parent: Path) -> list[str]:
    """Remove staging folders beside a run folder whose process (on this host) has died."""
    cleaned = []
    host = socket.gethostname().replace("-", "_")
    if not Path(parent).is_dir():
        return cleaned
    for entry in Path(parent).iterdir():
        match = _STAGING.match(entry.name)
        if match and match["host"] == host and not _alive(int(match["pid"])):
            shutil.rmtree(entry, ignore_errors=True)
            cleaned.append(entry.name)
    return cleaned


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def relative_to_folder(path: Path, directory: Path) -> str:
    """`path` as stored in the register: relative to the run folder when inside it."""
    resolved, base = Path(path).resolve(), Path(directory).resolve()
    try:
        return resolved.relative_to(base).as_posix()
    except ValueError:
        return str(resolved)
