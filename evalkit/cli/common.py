"""Shared CLI plumbing: consoles, error handling with meaningful exit codes, progress bars."""

from __future__ import annotations

import functools
import gc
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from evalkit.errors import EvalkitError

console = Console()
error_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

OUT_OF_MEMORY_EXIT = 3
OUT_OF_MEMORY = (
    "ran out of memory: the input is too large for the memory this process may use (the "
    "machine's, or a limit such as `ulimit -v`). Nothing was changed: a run folder is only "
    "replaced once its new state is complete. Run it again on a machine with more memory or a "
    "higher limit (about 0.8 GB per million staff rows for `assign` and `verify`).")


def handle_errors(command: F) -> F:
    """Print an EvalkitError as one clear message and exit with its code (1 check, 2 input,
    3 out of memory)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with _printing_input_notes(), _collecting_new_objects_only():
                return command(*args, **kwargs)
        except EvalkitError as error:
            error_console.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False,
                                soft_wrap=True)
            raise typer.Exit(error.exit_code) from None
        except OSError as error:  # the filesystem refused: a message, never a traceback
            where = f"{error.filename}: " if error.filename else ""
            reason = "is a folder, not a file" if isinstance(error, IsADirectoryError) \
                else error.strerror or str(error)
            text = escape(where + reason)
            error_console.print(f"[bold red]error:[/] {text}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except MemoryError:  # the frames are gone once unwound: there is room for a message
            error_console.print(f"[bold red]error:[/] {OUT_OF_MEMORY}", highlight=False,
                                soft_wrap=True)
            raise typer.Exit(OUT_OF_MEMORY_EXIT) from None

    return wrapper  # type: ignore[return-value]


@contextmanager
def _printing_input_notes() -> Iterator[None]:
    """Print each InputNote (e.g. 'read as Windows-1252') as a note on stderr, as it happens."""
    from evalkit.io.files import InputNote

    previous = warnings.showwarning

    def show(message, category, *args: Any, **kwargs: Any) -> None:
        if issubclass(category, InputNote):
            error_console.print(f"[yellow]note:[/] {escape(str(message))}", highlight=False,
                                soft_wrap=True)
        else:
            previous(message, category, *args, **kwargs)

    with warnings.catch_warnings():  # restores showwarning and the filters on exit
        warnings.simplefilter("always", InputNote)
        warnings.showwarning = show
        yield


@contextmanager
def _collecting_new_objects_only() -> Iterator[None]:
    """Run a command with what was imported so far (pandas, typer, rich...) frozen out of the
    garbage collector's scans: those objects live as long as the process, and re-scanning
    them in every older-generation pass cost about a tenth of a national `windows` run's CPU
    (0.87x CPU measured with it). Unfrozen afterwards, so nothing is kept for good."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def frame_table(frame: Any, title: str = "", columns: list[str] | None = None,
                limit: int | None = None, cell: Callable[[Any], str] = str) -> Table:
    """A pandas DataFrame as a rich table: the one way every command prints a frame."""
    columns = list(frame.columns) if columns is None else columns
    table = Table(title=title or None)
    for column in columns:
        table.add_column(str(column))
    shown = frame[columns] if limit is None else frame[columns].head(limit)
    for row in shown.itertuples(index=False):
        table.add_row(*[cell(value) for value in row])
    if limit is not None and len(frame) > limit:
        table.caption = f"... and {len(frame) - limit} more"
    return table


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A rich progress bar; yields a callback that advances it (rich.progress is imported
    here: most commands show none)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn()]
    with Progress(*columns, console=error_console, transient=True) as progress:
        task = progress.add_task(description, total=total)
        yield lambda steps: progress.advance(task, steps)
