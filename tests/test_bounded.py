"""Calls with a deadline in worker processes (sec/tasks/bounded.py): the bound on a call's own work
holds for a call stuck in C code, from the main thread and from other threads; stuck workers are
replaced; waiting for a worker never times a call out."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from sec.tasks.bounded import BoundedPool, CallTimeout, PoolStalled, PoolStartError

TIMEOUT_S = 0.5
SLACK_S = 0.5  # kill + pipes; this 2-core test machine runs other jobs
BOUND_S = TIMEOUT_S + SLACK_S  # a call's own work, once it has a worker


def pool(target: str, workers: int = 2, **kw) -> BoundedPool:
    p = BoundedPool(
        f"bounded_targets:{target}",
        workers=workers,
        max_workers=kw.get("max_workers", workers),
        timeout_s=kw.get("timeout_s", TIMEOUT_S),
        stall_s=60,
        soft_fraction=0.8,
        memory_bytes=kw.get("memory_bytes", 2 << 30),
        start_timeout_s=60,
    )
    assert p.wait_ready(60)
    return p


def timed(fn, *args):
    start = time.perf_counter()
    try:
        return fn(*args), time.perf_counter() - start
    except CallTimeout as err:
        return err, time.perf_counter() - start


def test_results_come_back_and_errors_are_raised():
    p = pool("echo")
    assert p.call({"a": [1, 2]}) == {"a": [1, 2]}
    assert p.call("x" * 100_000) == "x" * 100_000
    p.close()
    with pytest.raises(RuntimeError, match="ValueError: bad input"):
        pool("boom").call()


def test_a_call_stuck_in_c_code_is_killed_at_the_deadline_and_the_worker_replaced():
    p = pool("stuck")
    for _ in range(3):
        err, seconds = timed(p.call)
        assert isinstance(err, CallTimeout) and seconds < BOUND_S
    assert p.kills == 3 and p.timeouts == 3
    assert p.wait_ready(60)  # replacements started
    assert all(w.proc.poll() is None for w in list(p.live))
    p.close()


def test_a_slow_python_call_is_interrupted_inside_the_worker_which_survives():
    p = pool("slow_python")
    err, seconds = timed(p.call, 10.0)
    assert isinstance(err, CallTimeout) and seconds < BOUND_S and p.kills == 0
    assert p.call(0.01) == "done"
    p.close()


def test_the_bound_holds_from_worker_threads():
    """6 threads on 2 workers, every call stuck: each call's own work ends at the bound; the calls
    that found both workers busy waited for them (not a timeout of theirs)."""
    p = pool("stuck", workers=2)

    def one(_):
        err, seconds = timed(p.call)
        return err, seconds, *p.last_timing()

    with ThreadPoolExecutor(max_workers=6) as threads:
        results = list(threads.map(one, range(6)))
    assert all(isinstance(e, CallTimeout) and check < BOUND_S for e, _, _, check in results), results
    assert max(wait for *_, wait, _ in results) > TIMEOUT_S  # some waited for a busy worker
    assert p.timeouts == 6 and p.kills == 6
    p.close()


def test_waiting_behind_slow_calls_is_not_a_timeout():
    """One worker (no growth), a call stuck on it: a quick call behind it waits for the
    replacement and answers; only the stuck call times out."""
    p = pool("slow_python", workers=1, max_workers=1)
    with ThreadPoolExecutor(max_workers=2) as threads:
        slow = threads.submit(timed, p.call, 10.0)
        time.sleep(0.05)
        quick = threads.submit(lambda: (timed(p.call, 0.01), p.last_timing()))
        (result, _), (wait, check) = quick.result()
    assert result == "done" and wait > 0.3 and check < BOUND_S
    assert isinstance(slow.result()[0], CallTimeout) and p.timeouts == 1
    p.close()


def test_a_pool_whose_workers_cannot_come_free_is_an_error_not_a_score():
    p = BoundedPool(
        "bounded_targets:stuck", workers=1, max_workers=1, timeout_s=30, stall_s=0.5, soft_fraction=0.8,
        memory_bytes=0, start_timeout_s=60,
    )  # fmt: skip
    assert p.wait_ready(60)
    with ThreadPoolExecutor(max_workers=2) as threads:
        first = threads.submit(timed, p.call)
        time.sleep(0.1)
        with pytest.raises(PoolStalled, match="came free"):
            p.call()
    p.close()
    first.result()


def test_the_pool_grows_to_the_concurrent_callers():
    p = pool("slow_python", workers=1, max_workers=4, timeout_s=5.0)
    with ThreadPoolExecutor(max_workers=4) as threads:
        for _ in range(3):  # the first rounds start the workers the later ones find idle
            results = list(threads.map(lambda _: timed(p.call, 0.3), range(4)))
    assert p.n_workers == 4 and [r for r, _ in results] == ["done"] * 4
    p.close()


def test_a_worker_that_dies_or_runs_out_of_memory_is_a_timeout_or_an_error_not_a_hang():
    p = pool("die")
    err, seconds = timed(p.call)
    assert isinstance(err, CallTimeout) and seconds < BOUND_S
    p.close()
    p = pool("hog", memory_bytes=1 << 30)
    with pytest.raises(RuntimeError, match="MemoryError"):
        p.call()
    p.close()


def test_a_worker_that_cannot_start_is_one_clear_error():
    p = BoundedPool(
        "no_such_module_xyz:f",
        workers=1,
        max_workers=1,
        timeout_s=1,
        stall_s=60,
        soft_fraction=0.8,
        memory_bytes=0,
        start_timeout_s=60,
    )
    with pytest.raises(PoolStartError, match="no_such_module_xyz"):
        p.call()


def test_a_forked_child_gets_its_own_workers():
    p = pool("echo")
    assert p.call(1) == 1
    pid = os.fork()
    if pid == 0:  # child: a fresh pool for this process; the parent's workers are untouched
        child = pool("echo")
        os._exit(0 if child.call(2) == 2 and child.pid == os.getpid() else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert p.call(3) == 3
    p.close()


def test_close_kills_the_workers():
    p = pool("echo")
    procs = [w.proc for w in list(p.live)]
    p.close()
    deadline = time.monotonic() + 10
    while any(proc.poll() is None for proc in procs) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(proc.poll() is not None for proc in procs)
    assert threading.active_count() >= 1
