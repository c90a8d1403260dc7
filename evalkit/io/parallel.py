"""Run independent pieces of work on the machine's cores; results in the order asked.

Used where pieces of a command do not depend on one another: the outcomes of an analysis
plan (each outcome's models depend only on the shared analysis table), and, at large scale,
`assign`'s CSV exports beside the register it writes, and `verify`'s integrity checks beside
its recomputation. Workers are forked: they inherit the loaded data and the imported code, so
nothing is pickled on the way in (the task is a module global, set just before the fork),
only each task's result on the way back. The results are those the same code computes in
this process (the same code on the same data, and the same BLAS thread count, which a fork
inherits), and they come back in task order, whatever order they finish in.

Serial, in this process, when there is one core or nothing to do beside the one task, off
Linux (fork is unsafe on macOS and absent on Windows), or when the pool breaks (a worker
killed, fork refused); a task that raises in a worker is run again here, so its exception and
traceback are the ones a serial run would show. Warnings a worker raises are re-issued
here, in task order.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import sys
import warnings
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

T = TypeVar("T")
# The task the forked workers run, set only while a pool is running.
_TASK: Callable[[int], Any] | None = None


def usable_cores() -> int:
    """The processors this process may run on (its affinity mask, else the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class IdleWatch:
    """How many of the machine's cores sat idle since this was made (Linux /proc/stat).

    On a machine whose cores are all busy with other work a fork gains nothing and costs
    its copy-on-write pages, so `run_in_order` stays serial when, over the window this
    watch saw, less than half a core was idle. None when it cannot tell (no /proc/stat, a
    window too short to measure).
    """

    def __init__(self) -> None:
        self.start = _cpu_ticks()

    def idle_cores(self) -> float | None:
        """Cores idle on average since the watch was made, or None if unknown."""
        now = _cpu_ticks()
        if self.start is None or now is None:
            return None
        idle, total = now[0] - self.start[0], now[1] - self.start[1]
        cores = os.cpu_count() or 1
        if total < 10 * cores:   # under ~0.1 s of ticks: too short to say
            return None
        return cores * idle / total


def _cpu_ticks() -> tuple[int, int] | None:
    """(idle, total) clock ticks of all cores since boot, or None off Linux."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            fields = [int(value) for value in handle.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    return (fields[3] + fields[4], sum(fields)) if len(fields) >= 5 else None


def run_in_order(task: Callable[[int], T], count: int, workers: int | None = None,
                 on_done: Callable[[int], None] | None = None,
                 meanwhile: Callable[[], Any] | None = None,
                 watch: IdleWatch | None = None) -> tuple[list[T], Any]:
    """[task(0), ..., task(count - 1)], on up to `workers` forked processes (default: one
    per usable core), and the value of `meanwhile()`, which runs here while the workers work
    (first, when serial). `on_done(i)` is called here as task i finishes. With `watch`,
    serial when under half a core was idle since it was made (a machine already busy)."""
    done = on_done or (lambda index: None)
    idle = watch.idle_cores() if watch is not None else None
    cores = usable_cores() if idle is None or idle >= 0.5 else 1
    workers = min(count, cores if workers is None else workers)
    finished: dict[int, T] = {}
    later: Any = _NOT_RUN
    # fork (safe on Linux only) when two or more cores have work: two workers, or one
    # beside this process's `meanwhile`
    if cores >= 2 and (workers >= 2 or (workers == 1 and meanwhile is not None)) \
            and sys.platform.startswith("linux"):
        later = _run_forked(task, count, workers, done, meanwhile, finished)
    if later is _NOT_RUN:
        later = meanwhile() if meanwhile is not None else None
    results = []
    for index in range(count):
        if index not in finished:   # serial, or its worker failed: raises as a serial run
            finished[index] = task(index)
            done(index)
        results.append(finished[index])
    return results, later


_NOT_RUN = object()


def run_beside(background: Callable[[], T], foreground: Callable[[], Any],
               watch: IdleWatch | None = None) -> tuple[T, Any]:
    """(background(), foreground()): the first in a forked worker while the second runs
    here, so two cores share them; both here, in turn, whenever `run_in_order` would be
    serial. `background` must touch no open database connection or file of this process's
    (it runs in a copy of it)."""
    results, later = run_in_order(lambda index: background(), 1, workers=1,
                                  meanwhile=foreground, watch=watch)
    return results[0], later


def _run_forked(task: Callable[[int], T], count: int, workers: int,
                done: Callable[[int], None], meanwhile: Callable[[], Any] | None,
                finished: dict[int, T]) -> Any:
    """Fill `finished` with the tasks the workers completed; return meanwhile()'s value, or
    _NOT_RUN when no pool could be started."""
    global _TASK
    _TASK = task
    later: Any = _NOT_RUN
    failure: BaseException | None = None
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(
                "fork"), initializer=_own_streams, initargs=(os.getpid(),)) as pool:
            outermost = gc.get_freeze_count() == 0  # a caller's freeze (the CLI's) stays
            gc.freeze()   # the workers' collector then leaves the inherited objects (and
            try:          # their pages) alone: fewer copy-on-write page copies
                futures = [pool.submit(_worker, index) for index in range(count)]
            finally:
                if outermost:
                    gc.unfreeze()
            try:  # its own failure is raised as it is, once the workers are done
                later = meanwhile() if meanwhile is not None else None
            except BaseException as error:  # noqa: BLE001 (re-raised below)
                failure = error
            if failure is None:
                _collect(futures, done, finished)
    except (BrokenProcessPool, OSError):
        pass   # a fork refused or a worker killed: what is missing runs serially
    finally:
        _TASK = None
    if failure is not None:
        raise failure
    return later


def _collect(futures: list[Future], done: Callable[[int], None],
             finished: dict[int, Any]) -> None:
    """Results of the futures that succeeded, as each finishes; their warnings re-issued
    here in task order once all are in."""
    pending = set(futures)
    position = {id(future): index for index, future in enumerate(futures)}
    caught: dict[int, list[tuple[str, type[Warning], str, int]]] = {}
    while pending:
        ready, pending = wait(pending, return_when="FIRST_COMPLETED")
        for future in sorted(ready, key=lambda f: position[id(f)]):
            if future.exception() is None:
                index = position[id(future)]
                finished[index], caught[index] = future.result()
                done(index)
    for index in sorted(caught):
        for message, category, filename, lineno in caught[index]:
            warnings.warn_explicit(message, category, filename, lineno)


_IN_WORKER = False


def in_worker() -> bool:
    """True inside a worker forked by `run_in_order` (kill tests name steps by process)."""
    return _IN_WORKER


def _own_streams(parent: int) -> None:
    """In a new worker: die with the parent (a killed command must leave no worker behind,
    waiting forever for its next task), and standard streams of its own (fresh locks on the
    same descriptors), so nothing waits on a lock that a parent thread held at the fork."""
    global _IN_WORKER
    _IN_WORKER = True
    _die_with(parent)
    sys.stdout = open(1, "w", closefd=False)
    sys.stderr = open(2, "w", closefd=False)


def _die_with(parent: int) -> None:
    """Ask Linux to SIGKILL this process when `parent` dies (prctl PR_SET_PDEATHSIG); exit
    now if it already has. Elsewhere nothing is asked (workers are forked on Linux only)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        os._exit(1)


def _worker(index: int) -> tuple[Any, list[tuple[str, type[Warning], str, int]]]:
    """In a forked worker: run the inherited task, recording its warnings for the parent."""
    if _TASK is None:
        raise RuntimeError("no task: the worker was not forked from run_in_order")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = _TASK(index)
    return value, [(str(w.message), w.category, w.filename, w.lineno) for w in caught]
