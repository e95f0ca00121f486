"""Items of a generated task, each under a CPU-time bound (the time bound of
:mod:`sec.tasks.generation`): inline with a ``SIGPROF`` interval timer on the main thread, or in
forked worker processes that time their own items, with dynamic dispatch and in-order delivery.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import multiprocessing.connection as mp_connection
import os
import signal
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

from sec.tasks.records import ItemSource

__all__ = ["ItemGenerationError", "default_workers", "iter_raw"]


class ItemGenerationError(RuntimeError):
    """A level's generator failed or timed out on too many items (the config is likely unsatisfiable)."""


class _ItemTimeout(Exception):
    """Raised by the SIGPROF handler inside an item's generation: it ran past its CPU-time bound."""


def _on_alarm(signum: int, frame: Any) -> None:
    raise _ItemTimeout


@contextlib.contextmanager
def _alarm_handler() -> Iterator[None]:
    """Install the SIGPROF handler (main thread only); restores the previous handler and timer."""
    previous = signal.signal(signal.SIGPROF, _on_alarm)
    old_timer = signal.setitimer(signal.ITIMER_PROF, 0)
    started = time.process_time()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)
        if old_timer[0] > 0:
            remaining = max(old_timer[0] - (time.process_time() - started), 1e-3)
            signal.setitimer(signal.ITIMER_PROF, remaining, old_timer[1])


def _timed_item(dataset: Any, idx: int, timeout_s: float) -> tuple[dict[str, Any] | None, str]:
    """``dataset[idx]`` under the CPU-time interval timer; (item, "") or (None, reason). Needs
    _alarm_handler (or the worker's SIGPROF handler)."""
    signal.setitimer(signal.ITIMER_PROF, timeout_s)
    try:
        try:
            item = dataset[idx]
        finally:  # an alarm firing in here is still caught below
            signal.setitimer(signal.ITIMER_PROF, 0)
    except _ItemTimeout:
        return None, f"timed out after {timeout_s:g} s of CPU time"
    except Exception as exc:  # reasoning-gym raises e.g. ValueError when it gives up on an item
        return None, f"{type(exc).__name__}: {exc}"
    return item, ""


def _make_dataset(task: ItemSource, level_kwargs: Mapping[str, Any], seed: int) -> Any:
    return task.make_dataset(level_kwargs, seed)


def _worker_main(
    conn: Any,
    inherited: list[Any],
    task: ItemSource,
    level_kwargs: dict[str, Any],
    seed: int,
    timeout_s: float,
) -> None:
    """Worker process: answer ``(start, count)`` requests with timed items until EOF / ``None``.

    ``inherited`` are the parent-side pipe ends a forked child got a copy of; closing them lets the
    worker see EOF (and exit) when the parent closes its end or dies.
    """
    for other in inherited:
        other.close()
    signal.signal(signal.SIGPROF, _on_alarm)
    dataset = _make_dataset(task, level_kwargs, seed)
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        if request is None:
            return
        start, count = request
        try:
            conn.send([(i, *_timed_item(dataset, i, timeout_s)) for i in range(start, start + count)])
        except OSError:  # parent went away
            return


def iter_raw(
    task: ItemSource,
    level_kwargs: Mapping[str, Any],
    seed: int,
    timeout_s: float,
    workers: int,
    chunk: int,
    expected: int,
    start: int = 0,
) -> Iterator[tuple[int, dict[str, Any] | None, str]]:
    """Yield ``(index, item | None, failure reason)`` for indices ``start``, ``start + 1``, ... in
    order, lazily.

    Inline with a main-thread CPU-time timer when ``workers <= 1`` and we are on the main thread;
    otherwise in worker processes (each times its items with its own SIGPROF timer).

    Dispatch is dynamic: each worker has a private pipe and up to two chunks of ``chunk`` indices in
    flight, and whichever worker answers first gets the next chunk, so a worker that drew slow items
    (zebra items take 0.1-2 s) does not hold the others back. Results are reordered by index in a
    buffer of at most ``4 * workers`` chunks. Chunks are only submitted up to index ``expected``
    (what the caller needs if nothing is skipped); once those are consumed, more are submitted on
    demand, so the last chunks do not generate items nobody reads. Private pipes (not a shared
    queue) let closing the iterator kill busy workers without deadlocking
    (``multiprocessing.Pool.terminate`` can). Workers are forked where possible: ``spawn`` would
    re-run an unguarded ``__main__`` script in every worker. No result within
    ``2 * chunk * timeout_s + 60`` seconds, or a dead worker, raises :class:`ItemGenerationError`.

    One function on purpose (~80 lines): the dispatch state (in-flight counts, reorder buffer,
    submission window) lives in one generator frame whose ``finally`` kills the workers.
    """
    on_main = threading.current_thread() is threading.main_thread()
    if workers <= 1 and on_main:
        dataset = _make_dataset(task, level_kwargs, seed)
        with _alarm_handler():
            idx = start
            while True:
                item, reason = _timed_item(dataset, idx, timeout_s)
                yield idx, item, reason
                idx += 1
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    ctx = mp.get_context(method)
    n_procs = max(1, workers)
    patience = 2 * chunk * timeout_s + 60
    window = 4 * n_procs * chunk  # reorder bound: submitted - yielded indices
    procs: list[Any] = []
    conns: list[Any] = []
    try:
        for _ in range(n_procs):
            parent_conn, child_conn = ctx.Pipe()
            proc = ctx.Process(
                target=_worker_main,
                args=(
                    child_conn,
                    [parent_conn, *conns] if method == "fork" else [],
                    task,
                    dict(level_kwargs),
                    seed,
                    timeout_s,
                ),
                daemon=True,
            )
            proc.start()
            child_conn.close()
            procs.append(proc)
            conns.append(parent_conn)
        in_flight = [0] * n_procs
        buffer: dict[int, list[Any]] = {}
        next_start = start  # first index not yet submitted
        next_yield = start  # first index not yet yielded
        limit = start + max(expected, 1)  # submit up to this index; raised on demand

        def fill(worker: int) -> None:
            nonlocal next_start
            while in_flight[worker] < 2 and next_start < limit and next_start - next_yield < window:
                conns[worker].send((next_start, chunk))
                in_flight[worker] += 1
                next_start += chunk

        while True:
            if next_yield in buffer:
                results = buffer.pop(next_yield)
                next_yield += len(results)
                yield from results
                continue
            if not any(in_flight) and next_start >= limit:
                limit = next_start + chunk * n_procs  # items were skipped: the caller wants more
            for worker in range(n_procs):
                fill(worker)
            ready = mp_connection.wait([conns[w] for w in range(n_procs) if in_flight[w]], timeout=patience)
            if not ready:
                raise ItemGenerationError(f"{task.name}: no result from a generator worker in {patience:g} s")
            for conn in ready:
                worker = conns.index(conn)
                try:
                    results = conn.recv()
                except (EOFError, OSError):
                    raise ItemGenerationError(
                        f"{task.name}: a generator worker died (exit code {procs[worker].exitcode})"
                    ) from None
                in_flight[worker] -= 1
                buffer[results[0][0]] = results
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.join(timeout=10)
        for conn in conns:
            conn.close()


def default_workers(n: int) -> int:
    """Worker processes for ``n`` items: 1 (inline) below 256 items, else the usable CPUs (max 16)."""
    if n < 256:
        return 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(16, cpus))
