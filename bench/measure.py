"""Shared by the benchmarks: time whole processes (wall, CPU, peak memory) and print a table
with each figure beside the floor or peer measured in the same run."""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Measure:
    """Median wall and CPU seconds of some runs, and the largest peak resident memory (MB)."""

    wall: float
    cpu: float | None = None
    peak_mb: float | None = None


@dataclass(frozen=True)
class Row:
    """One line of a table: a case, and optionally its floor or peer and the target."""

    name: str
    measure: Measure
    floor_name: str = ""
    floor: Measure | None = None
    target: str = ""


def evalkit_cli() -> list[str]:
    """The `evalkit` console script of this interpreter's environment."""
    found = shutil.which("evalkit", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "evalkit"]


def run_process(args: list[str], cwd: Path | None = None) -> Measure:
    """One run of a command: wall seconds, user+sys seconds (its rusage, workers included)
    and the peak RSS of its largest process (see `PeakWatch`)."""
    with tempfile.TemporaryFile() as output:
        start = time.perf_counter()
        process = subprocess.Popen(args, stdout=output, stderr=subprocess.STDOUT, cwd=cwd)
        watch = PeakWatch(process.pid)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        peak = watch.stop()
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            output.seek(0)
            tail = output.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"{' '.join(map(str, args))} exited {process.returncode}:\n{tail}")
    return Measure(wall, usage.ru_utime + usage.ru_stime,
                   peak if peak is not None else usage.ru_maxrss / 1024)


class PeakWatch(threading.Thread):
    """The largest VmHWM (peak RSS) of a process and its descendants, read from /proc every
    20 ms while it runs. rusage's ru_maxrss would be inflated: a child started from this big
    benchmark process keeps this process's RSS as its high-water mark across exec, and a
    forked worker's is counted too. None off Linux or for a run too short to sample."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peaks, self.done = pid, {}, threading.Event()
        self.start()

    def run(self) -> None:
        while not self.done.wait(0.02):
            for pid in _tree(self.pid):
                peak = _vm_hwm_mb(pid)
                if peak is not None:
                    self.peaks[pid] = max(peak, self.peaks.get(pid, 0.0))

    def stop(self) -> float | None:
        self.done.set()
        self.join()
        return max(self.peaks.values()) if self.peaks else None


def _tree(pid: int) -> list[int]:
    """A process and its descendants (Linux /proc), [pid] where that cannot be read."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as handle:
            children = [int(child) for child in handle.read().split()]
    except OSError:
        return [pid]
    return [pid, *(p for child in children for p in _tree(child))]


def _vm_hwm_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        return None
    return None


def repeat_process(make_args: Callable[[int], list[str]], repeats: int,
                   cwd: Path | None = None) -> Measure:
    """Median wall and CPU of `repeats` runs (the command may differ per run, e.g. --out)."""
    runs = [run_process(make_args(index), cwd) for index in range(repeats)]
    return Measure(statistics.median(r.wall for r in runs),
                   statistics.median(r.cpu for r in runs if r.cpu is not None),
                   max(r.peak_mb for r in runs if r.peak_mb is not None))


def paired(case: Callable[[int], list[str]], floor: Callable[[int], list[str]],
           repeats: int, cwd: Path | None = None) -> tuple[Measure, Measure]:
    """Case and floor run in turn (A B A B ...), so a drifting machine affects both alike."""
    cases, floors = [], []
    for index in range(repeats):
        cases.append(run_process(case(index), cwd))
        floors.append(run_process(floor(index), cwd))

    def summary(runs: list[Measure]) -> Measure:
        return Measure(statistics.median(r.wall for r in runs),
                       statistics.median(r.cpu for r in runs),
                       max(r.peak_mb for r in runs))

    return summary(cases), summary(floors)


def in_process(action: Callable[[], object], repeats: int = 1) -> Measure:
    """Median wall and CPU seconds of a call in this process; peak = this process so far."""
    walls, cpus = [], []
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        action()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu_start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return Measure(statistics.median(walls), statistics.median(cpus), peak)


def _number(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def print_table(title: str, rows: list[Row]) -> None:
    """Each case with wall/CPU/peak, its floor's, and the ratio case / floor."""
    print(title)
    header = ("case", "wall s", "cpu s", "peak MB", "floor or peer", "wall s", "cpu s",
              "peak MB", "x wall", "x cpu", "target")
    table = [header]
    for row in rows:
        floor = row.floor
        ratio_wall = row.measure.wall / floor.wall if floor and floor.wall else None
        ratio_cpu = (row.measure.cpu / floor.cpu if floor and floor.cpu and row.measure.cpu
                     else None)
        table.append((row.name, _number(row.measure.wall), _number(row.measure.cpu),
                      _number(row.measure.peak_mb, 0), row.floor_name,
                      _number(floor.wall) if floor else "", _number(floor.cpu) if floor else "",
                      _number(floor.peak_mb, 0) if floor else "", _number(ratio_wall),
                      _number(ratio_cpu), row.target))
    widths = [max(len(str(line[i])) for line in table) for i in range(len(header))]
    for line in table:
        cells = [str(c).ljust(w) if i in (0, 4, 10) else str(c).rjust(w)
                 for i, (c, w) in enumerate(zip(line, widths, strict=True))]
        print("  ".join(cells).rstrip())
    print("x = case / floor (medians of the same run, taken in turn); peak = largest RSS of one "
          "process (in-process rows: this benchmark's process so far)")
