"""Commands for staff turnover after sealing: enrol (new starters) and transfer."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from evalkit.cli.allocation import KeyFileOption
from evalkit.cli.common import console, frame_table

if TYPE_CHECKING:
    from evalkit.turnover.events import TurnoverResult


RunDirectory = Annotated[Path, typer.Argument(help="Output folder holding register.sqlite.")]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why: recorded in the event log.")]


def _print_result(title: str, result: TurnoverResult) -> None:
    console.print(frame_table(result.rows, title))
    console.print("Regenerated:")
    for path in result.files.values():
        console.print(f"  {path}")


def enrol_command(
    directory: RunDirectory,
    staff: Annotated[Path, typer.Option("--staff", help="New starters (CSV or XLSX), with "
                                        "staff_id, grade, pdu_code and optional name, email, "
                                        "pod, line_manager_id, office.")],
    reason: ReasonOption = "new starters",
    key_file: KeyFileOption = None,
) -> None:
    """Enrol new starters into the trial.

    PDU-level designs give them their PDU's group; staff-level designs give each the next
    unused slot of their stratum's concealed sequence.

    Example: evalkit enrol outputs/seeds2 --staff new_starters.csv [--key-file ~/trial.key]
    """
    from evalkit.delivery.windows import closed_window_warnings
    from evalkit.turnover.events import enrol

    result = enrol(directory, staff, reason=reason, key_file=key_file)
    _print_result(f"{len(result.rows)} new starter(s) enrolled", result)
    for line in closed_window_warnings(result.rows):  # late joiners: their window has closed
        console.print(f"[bold yellow]warning:[/] {escape(line)}", highlight=False)


def transfer_command(
    directory: RunDirectory,
    staff_id: Annotated[str, typer.Option("--staff-id", help="The person moving.")],
    to_pdu: Annotated[str, typer.Option("--to-pdu", help="Destination PDU code or name.")],
    reason: ReasonOption = "",
) -> None:
    """Move a person to another PDU; they keep their group.

    Intention to treat: a transfer never changes the group a person was allocated.

    Example: evalkit transfer outputs/seeds2 --staff-id S000123 --to-pdu N55YRK --reason move
    """
    from evalkit.turnover.events import transfer

    result = transfer(directory, staff_id, to_pdu, reason=reason)
    _print_result("Transferred (group unchanged; flagged for the contamination report)", result)


COMMANDS = {"enrol": enrol_command, "transfer": transfer_command}
