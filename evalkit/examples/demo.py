"""The main job on the shipped example, every stage in order of the data flow:

roster -> allocation -> booking windows and guidance -> lookup page -> monitoring -> analysis.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from evalkit.allocation.assign import AssignResult, run_assign
from evalkit.analysis.plan.run import run_plan
from evalkit.delivery.guidance import run_guidance
from evalkit.delivery.publish import publish
from evalkit.delivery.windows import run_windows
from evalkit.examples.bookings import write_example_bookings
from evalkit.examples.outcomes import write_example_outcomes
from evalkit.examples.roster import write_example
from evalkit.io.parallel import IdleWatch, run_in_order
from evalkit.monitoring.report import run_monitor

# The shipped example's design, packaged so `evalkit demo` works from any folder
# (configs/seeds2.toml in the repository is an identical copy, checked by a test).
PACKAGED_DESIGN = Path(__file__).resolve().parent / "data" / "seeds2.toml"
# The example's monitoring is read as at the end of the Control window's year.
MONITOR_AS_OF = dt.date(2023, 12, 31)
STEPS = ("example roster", "allocation", "booking windows", "guidance", "lookup page",
         "monitoring", "outcome analysis")


@dataclass
class DemoResult:
    """Where each stage's main outputs went."""

    run_directory: Path
    assign: AssignResult
    outputs: dict[str, Path] = field(default_factory=dict)


def run_demo(directory: Path, config: Path = PACKAGED_DESIGN,
             on_step: Callable[[str], None] | None = None) -> DemoResult:
    """Run every stage on the shipped example in `directory` (a scratch folder: replaced)."""
    step = on_step or (lambda name: None)
    watch = IdleWatch()   # the example inputs are forked only if a core sat idle until then
    example_dir, run_dir = Path(directory) / "example", Path(directory) / "demo"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    step(STEPS[0])
    roster = write_example(example_dir)
    step(STEPS[1])
    assigned = run_assign(config, out=run_dir, pdus=roster["pdus"], staff=roster["staff"])
    result = DemoResult(run_dir, assigned, {"allocation": run_dir / "allocation.xlsx"})
    # The example's bookings and outcomes depend only on the allocation: a worker writes
    # them while this process makes the windows, guidance and lookup page.
    (bookings, outcomes), _ = run_in_order(
        lambda index: (write_example_bookings(run_dir, example_dir / "bookings.csv")
                       if index == 0 else write_example_outcomes(example_dir, run_dir)),
        2, workers=1, meanwhile=lambda: _delivery(run_dir, result, step), watch=watch)
    step(STEPS[5])
    monitored = run_monitor(run_dir, bookings, as_of=MONITOR_AS_OF)
    result.outputs["monitoring"] = monitored.files["html"]
    step(STEPS[6])
    analysed = run_plan(run_dir, outcomes)
    result.outputs["outcome report"] = analysed.files["html"]
    return result


def _delivery(run_dir: Path, result: DemoResult, step: Callable[[str], None]) -> None:
    """Booking windows, guidance and the staff lookup page of the sealed run."""
    step(STEPS[2])
    result.outputs["booking windows"] = run_windows(run_dir)[1]["workbook"]
    step(STEPS[3])
    run_guidance(run_dir)
    result.outputs["guidance and contamination risk"] = run_dir / "guidance.html"
    step(STEPS[4])
    result.outputs["staff lookup page"] = publish(run_dir).path
