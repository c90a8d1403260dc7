"""The plan's outcomes on forked workers: the same results in the same order as serially."""

from __future__ import annotations

import os
import warnings

import pytest

from evalkit.analysis.plan import compute as plan_module
from evalkit.analysis.plan.outputs import results_document
from evalkit.io import parallel
from evalkit.register import Register
from evalkit.trial.design import load_design
from tests.conftest import SEEDS2_CONFIG

needs_fork = pytest.mark.skipif(not parallel.sys.platform.startswith("linux")
                                or parallel.usable_cores() < 2,
                                reason="workers are forked on Linux, with two cores or more")


def _square_or_fail(index: int) -> int:
    if index == 2:
        raise ValueError(f"task {index} failed")
    return index * index


def test_serial_and_forked_runs_give_the_same_list_in_task_order(monkeypatch):
    done = []
    results, later = parallel.run_in_order(lambda i: (i, os.getpid()), 5, workers=2,
                                           on_done=done.append, meanwhile=lambda: "here")
    assert [value for value, _ in results] == [0, 1, 2, 3, 4]
    assert later == "here" and sorted(done) == [0, 1, 2, 3, 4]
    monkeypatch.setattr(parallel, "usable_cores", lambda: 1)
    serial, later = parallel.run_in_order(lambda i: (i, os.getpid()), 5, workers=2,
                                          meanwhile=lambda: "here")
    assert serial == [(i, os.getpid()) for i in range(5)] and later == "here"


@needs_fork
def test_forked_tasks_run_in_other_processes():
    results, _ = parallel.run_in_order(lambda i: os.getpid(), 4, workers=2)
    assert os.getpid() not in results


@needs_fork
def test_one_worker_beside_this_process_when_there_is_work_here_too():
    results, later = parallel.run_in_order(lambda i: os.getpid(), 2, workers=1,
                                           meanwhile=os.getpid)
    assert later == os.getpid() and os.getpid() not in results and len(set(results)) == 1
    alone, _ = parallel.run_in_order(lambda i: os.getpid(), 2, workers=1)
    assert alone == [os.getpid()] * 2


def test_a_task_that_raises_raises_here_as_in_a_serial_run():
    for workers in (1, 2):
        with pytest.raises(ValueError, match="task 2 failed"):
            parallel.run_in_order(_square_or_fail, 4, workers=workers)


def test_one_core_runs_serially_in_this_process(monkeypatch):
    monkeypatch.setattr(parallel, "usable_cores", lambda: 1)
    results, _ = parallel.run_in_order(lambda i: os.getpid(), 3)
    assert results == [os.getpid()] * 3


def test_warnings_of_a_worker_are_issued_here():
    def warn(index: int) -> int:
        warnings.warn(f"outcome {index} is odd", RuntimeWarning, stacklevel=1)
        return index

    with pytest.warns(RuntimeWarning) as caught:
        parallel.run_in_order(warn, 2, workers=2)
    assert sorted(str(w.message) for w in caught) == ["outcome 0 is odd", "outcome 1 is odd"]


def test_outcomes_with_the_same_models_share_a_batch_split_for_spare_workers():
    plan = load_design(SEEDS2_CONFIG).analysis
    names = [o.name for o in plan.outcomes]
    assert names == ["supervision_quality", "retained", "sickness_days"]
    assert plan_module.outcome_batches(plan, 2) == [[0], [1, 2]]
    assert plan_module.outcome_batches(plan, 3) == [[0], [1], [2]]
    assert plan_module.outcome_batches(plan, 1) == [[0], [1, 2]]


class Watch(parallel.IdleWatch):
    """An idle-core reading fixed by the test."""

    def __init__(self, idle: float | None) -> None:
        self.idle = idle

    def idle_cores(self) -> float | None:
        return self.idle


@needs_fork
def test_a_busy_machine_runs_serially_an_idle_core_forks():
    busy, _ = parallel.run_in_order(lambda i: os.getpid(), 2, watch=Watch(0.2))
    assert busy == [os.getpid()] * 2
    for idle in (1.0, None):   # None: cannot tell, so fork
        forked, _ = parallel.run_in_order(lambda i: os.getpid(), 2, watch=Watch(idle))
        assert os.getpid() not in forked


def test_the_idle_watch_reads_a_fraction_of_the_cores():
    watch = parallel.IdleWatch()
    sum(range(3_000_000))   # some ticks for the window
    idle = watch.idle_cores()
    assert idle is None or 0 <= idle <= (os.cpu_count() or 1)


def test_the_plan_on_two_workers_equals_the_plan_in_one_process(analysed_run, monkeypatch):
    register = Register.open(analysed_run["run"])
    monkeypatch.setattr(parallel.IdleWatch, "idle_cores", lambda self: None)
    forked = plan_module.compute_plan(register, analysed_run["outcomes"])
    monkeypatch.setattr(parallel, "usable_cores", lambda: 1)
    serial = plan_module.compute_plan(register, analysed_run["outcomes"])
    expected = results_document(serial, analysed_run["outcomes"], "now")
    assert results_document(forked, analysed_run["outcomes"], "now") == expected
    assert [(m.result.outcome, m.result.model) for m in forked.models] == [
        (m.result.outcome, m.result.model) for m in serial.models]
