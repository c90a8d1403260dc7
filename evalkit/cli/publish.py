"""Command for the delivery stage: publish the self-contained staff lookup page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from evalkit.cli.common import console, handle_errors
from evalkit.delivery.publish import publish


def publish_command(
    directory: Annotated[Path, typer.Argument(help="Output folder holding register.sqlite.")],
    out: Annotated[Path | None, typer.Option(
        "--out", help="Folder for index.html, or an .html file (default: DIR/site).")] = None,
) -> None:
    """Write one offline HTML page where staff find their PDU's (or their own) group and window.

    Example: evalkit publish outputs/seeds2 --out outputs/seeds2/site
    """
    result = publish(directory, out)
    staff = f", {result.staff_entries} staff IDs (hashed)" if result.staff_entries else ""
    console.print(f"wrote {result.path} ({result.size_bytes / 1024:.0f} KiB; "
                  f"{result.pdus} PDUs{staff})")


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the app."""
    app.command("publish")(handle_errors(publish_command))
