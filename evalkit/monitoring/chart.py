"""The monitoring page's completion chart, as inline SVG drawn from plain arrays.

matplotlib takes about 0.3-0.5 s to import, more than comparing a national export. When a core
is idle, `monitor` therefore starts a helper process (`ChartProcess`) that imports it while
the export is read and compared, and has the chart drawn there while the workbook is written.
The helper gets only the chart's arrays (weeks, and each group's cumulative percentage) and
draws them with the same function as this process; if it cannot start or fails in any way,
the chart is drawn here instead. The SVG is the same either way.

Run as `python -m evalkit.monitoring.chart`: the helper (reads the pickled arrays on stdin,
after their length as 8 bytes, and writes the pickled SVG on stdout).
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from types import TracebackType

import numpy as np

from evalkit.io.figures import figure_to_svg, plot_style

TITLE = "Cumulative percentage of each group's staff who have completed"
HELPER_TIMEOUT = 120  # seconds: a helper slower than this is stopped; the chart is drawn here
Series = list[tuple[str, np.ndarray]]


def chart_svg(weeks: np.ndarray, series: Series) -> str:
    """The completion curve as an inline SVG (no XML header), one look per group."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 3.6))
    axes = figure.subplots()
    for group, values in series:
        style = plot_style(group)
        axes.step(weeks, values, where="post", label=group, color=style["color"],
                  linestyle=style["linestyle"], linewidth=2)
    axes.set_ylabel("% of staff completed")
    axes.set_ylim(0, 100)
    axes.grid(alpha=0.3)
    if series:
        axes.legend(frameon=False)
    figure.autofmt_xdate()
    figure.tight_layout()
    return figure_to_svg(figure, TITLE)


class ChartProcess:
    """A helper process that imports matplotlib now and draws one chart when asked.

    Use as a context manager: `submit` the arrays, then `result()` gives the SVG (drawn in
    this process if the helper is missing or failed). Leaving the block stops the helper.
    """

    def __init__(self, helper: bool | None = None) -> None:
        """`helper`: start the helper process (default: only when a processor core is idle,
        so a busy machine is not given a second process to share its cores with)."""
        self._process: subprocess.Popen | None = None
        self._job: tuple[np.ndarray, Series] | None = None
        if not (spare_core() if helper is None else helper):
            return
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", __name__], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        except (OSError, ValueError):
            self._process = None

    def __enter__(self) -> ChartProcess:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def submit(self, weeks: np.ndarray, series: Series) -> None:
        """Hand the helper the chart's arrays; it draws while this process goes on."""
        self._job = (weeks, series)
        if self._process is None:
            return
        payload = pickle.dumps(self._job)
        try:
            assert self._process.stdin is not None
            self._process.stdin.write(len(payload).to_bytes(8, "big") + payload)
            self._process.stdin.flush()
        except OSError:
            self.close()

    def result(self) -> str:
        """The SVG of the submitted chart: the helper's, or drawn here if it failed."""
        if self._job is None:
            raise RuntimeError("ChartProcess.result() before submit()")
        process, self._process = self._process, None
        if process is not None:
            try:
                output, _ = process.communicate(timeout=HELPER_TIMEOUT)
                if process.returncode == 0:
                    svg = pickle.loads(output)
                    if isinstance(svg, str):
                        return svg
            except Exception:  # noqa: BLE001 - whatever went wrong there, draw it here
                _stop(process)
        return chart_svg(*self._job)

    def close(self) -> None:
        """Stop the helper if it is still running (e.g. the command failed before the chart)."""
        process, self._process = self._process, None
        if process is not None:
            _stop(process)


def spare_core() -> bool:
    """True when this machine has a core to spare: two or more, and a 1-minute load average
    at least one below their number (no load average, e.g. on Windows: two cores suffice)."""
    cores = os.cpu_count() or 1
    if cores < 2:
        return False
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return True
    return load <= cores - 1


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
    process.communicate()


def _serve() -> None:
    """The helper: import matplotlib first (the slow part), then draw what arrives on stdin."""
    import matplotlib.figure  # noqa: F401 - imported before the arrays arrive, on purpose

    size = int.from_bytes(sys.stdin.buffer.read(8), "big")
    weeks, series = pickle.loads(sys.stdin.buffer.read(size))
    sys.stdout.buffer.write(pickle.dumps(chart_svg(weeks, series)))


if __name__ == "__main__":
    _serve()
