"""Calls that return within a deadline on any thread or process: a pool of worker processes.

Why: math-verify bounds its work with ``SIGALRM``, which Python delivers only on the main thread
and only between bytecodes; verl calls reward functions from a thread pool, where
``\\boxed{9^{9^{9}}}`` then never returns, and even on the main thread a long C-level sympy
computation outlives the alarm. A thread cannot be stopped from outside; a process can.

How (:class:`BoundedPool`): persistent worker processes (``python -m sec.tasks.bounded
<module:function>``) each answer one request at a time over pipes (JSON lines). A call first
takes an idle worker: when none is idle the pool grows by one (up to ``max_workers``, so that
concurrent callers soon each have one; a new worker takes ~1-1.5 s to start) and the call waits
for the first worker to become idle. Then it sends its arguments and waits ``timeout_s``. No
answer by then: the worker is killed (``SIGKILL``), a replacement is started in the background,
and the call raises :class:`CallTimeout`. Inside a worker the function also runs under an
interval timer of ``soft_fraction * timeout_s`` (``ITIMER_REAL``, the worker's own main thread),
so a slow call that Python can interrupt ends there and the worker is kept; an address-space
limit (``RLIMIT_AS``, ``memory_bytes``) turns a runaway allocation into a ``MemoryError``.

Bounds, from the main thread, any other thread or any process: a call's own work ends within
``timeout_s`` of getting a worker (plus one ``SIGKILL`` and a few pipe operations, ~ms); only
that makes it a :class:`CallTimeout`. Waiting for a worker is not held against the call: every
busy worker is free again within ``timeout_s`` (or replaced), so the wait is that of the calls
ahead of it, and a call never times out because other calls were slow or because the pool was
still starting workers (:meth:`BoundedPool.last_timing` has a call's wait and work). A pool in
which no worker came free for ``stall_s`` is broken (workers cannot start): :class:`PoolStalled`.
The first call in a process waits for the first worker to import the function's module (~1-3 s).
A forked child that calls the pool gets its own.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import queue
import select
import signal
import subprocess
import sys
import threading
import time
from typing import Any

__all__ = ["BoundedPool", "CallTimeout", "PoolStalled", "PoolStartError"]

log = logging.getLogger("sec.tasks")


class CallTimeout(Exception):
    """A call did not return within its deadline (or its worker died on it)."""


class PoolStartError(RuntimeError):
    """No worker process could be started (the message has the worker's stderr)."""


class PoolStalled(PoolStartError):
    """No worker came free for ``stall_s``: the pool is broken, not the call's answer slow."""


class _Worker:
    """One worker process and the read buffer of its answers."""

    def __init__(self, target: str, soft_s: float, memory_bytes: int) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if isinstance(p, str) and p))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sec.tasks.bounded", target, repr(soft_s), str(memory_bytes)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,  # a Ctrl-C to the caller's process group does not hit the workers
        )
        self.buffer = b""

    def read_line(self, deadline: float) -> bytes | None:
        """The next line the worker writes, or None at the deadline or when it exits."""
        fd = self.proc.stdout.fileno()  # type: ignore[union-attr]
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line

    def send(self, args: tuple[Any, ...]) -> bool:
        try:
            self.proc.stdin.write(json.dumps(args).encode() + b"\n")  # type: ignore[union-attr]
            self.proc.stdin.flush()  # type: ignore[union-attr]
            return True
        except (BrokenPipeError, OSError):
            return False

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        threading.Thread(target=self._reap, daemon=True).start()

    def _reap(self) -> None:
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            return
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()

    def stderr_tail(self) -> str:
        try:
            return self.proc.stderr.read().decode(errors="replace")[-2000:]  # type: ignore[union-attr]
        except (OSError, ValueError):
            return ""


class BoundedPool:
    """``function(*args)`` (``"module:function"``, JSON arguments and result) in worker
    processes, each call ending within ``wait_s + timeout_s`` seconds (module doc).

    Args:
        target: ``"package.module:function"``; the module may define ``warm_up()``, run once per
            worker before it takes requests.
        workers: worker processes started with the pool (>= 1).
        max_workers: the pool grows by one worker (up to this many) whenever a call finds none
            idle, so that concurrent callers (verl's reward threads) do not queue for long.
        timeout_s: wall-clock bound of one call once a worker has it.
        stall_s: how long a call waits for an idle worker before the pool counts as broken
            (:class:`PoolStalled`); not a bound a working pool reaches (module doc).
        soft_fraction: share of ``timeout_s`` after which a call is interrupted inside the worker
            (the worker then survives; a call that cannot be interrupted is killed at ``timeout_s``).
        memory_bytes: address-space limit of each worker (0: none).
        start_timeout_s: how long the first call waits for a worker to start.
    """

    def __init__(
        self,
        target: str,
        *,
        workers: int,
        max_workers: int,
        timeout_s: float,
        stall_s: float,
        soft_fraction: float,
        memory_bytes: int,
        start_timeout_s: float,
    ) -> None:
        if not 1 <= workers <= max_workers or timeout_s <= 0 or stall_s <= 0 or not 0 < soft_fraction <= 1:
            raise ValueError(
                f"bad pool settings: workers={workers}, max_workers={max_workers}, timeout_s={timeout_s}, "
                f"stall_s={stall_s}, soft_fraction={soft_fraction}"
            )
        self.target, self.timeout_s, self.stall_s = target, float(timeout_s), float(stall_s)
        self.n_workers, self.max_workers = int(workers), int(max_workers)  # n_workers: the current size
        self.soft_s, self.memory_bytes, self.start_timeout_s = timeout_s * soft_fraction, memory_bytes, start_timeout_s
        self.pid = os.getpid()
        self.idle: queue.Queue[_Worker] = queue.Queue()
        self.live: set[_Worker] = set()
        self.timeouts = 0  # calls that raised CallTimeout
        self.kills = 0  # workers killed (a call past its deadline, or a dead worker)
        self.calls = 0
        self._lock = threading.Lock()
        self._spawned = False
        self._ready = threading.Event()  # one worker took requests, or every first worker failed
        self._start_failures = 0
        self._start_error: str | None = None
        self._closed = False
        self._timing = threading.local()
        atexit.register(self.close)

    # ------------------------------------------------------------------ workers
    def _spawn(self, first: bool) -> None:
        """Start one worker and, once it says ready, make it idle (runs in a background thread)."""
        worker = None
        try:
            worker = _Worker(self.target, self.soft_s, self.memory_bytes)
            with self._lock:
                self.live.add(worker)
            line = worker.read_line(time.monotonic() + self.start_timeout_s)
            if line != b"ready":
                raise OSError(worker.stderr_tail() or f"no answer within {self.start_timeout_s:g} s")
        except OSError as exc:
            if worker is not None:
                worker.kill()
            if self._closed:  # killed by close() (the process exits) while starting: not a failure
                return
            self._start_error = f"a worker for {self.target} did not start: {exc}"
            log.error("%s", self._start_error)
            with self._lock:
                self.live.discard(worker)  # type: ignore[arg-type]
                self.n_workers -= 1  # a later call may grow the pool again
                self._start_failures += first
                if not self.live and self.idle.empty():
                    self._ready.set()  # no worker at all: start() raises
            return
        if self._closed:
            worker.kill()
            return
        self.idle.put(worker)
        self._ready.set()

    def _launch(self, first: bool = False) -> None:
        threading.Thread(target=self._spawn, args=(first,), daemon=True).start()

    def start(self) -> None:
        """Start the workers (once); returns when one is ready.

        Raises:
            PoolStartError: none started (message: the worker's stderr).
        """
        with self._lock:
            spawn, self._spawned = not self._spawned, True
        if spawn:
            for _ in range(self.n_workers):
                self._launch(first=True)
        self._ready.wait(self.start_timeout_s + 5)
        with self._lock:
            failed = not self.live and self.idle.empty()
        if failed or not self._ready.is_set():
            raise PoolStartError(self._start_error or f"no worker for {self.target} started")

    def wait_ready(self, timeout_s: float) -> bool:
        """Start the pool if needed and wait until every worker is idle (replacements included);
        whether they were within ``timeout_s``."""
        self.start()
        end = time.monotonic() + timeout_s
        while self.idle.qsize() < self.n_workers:
            if time.monotonic() > end:
                return False
            time.sleep(0.02)
        return True

    def _grow(self) -> None:
        with self._lock:
            if self.n_workers >= self.max_workers or self._closed:
                return
            self.n_workers += 1
        self._launch()

    def _replace(self, worker: _Worker) -> None:
        self.kills += 1
        worker.kill()
        with self._lock:
            self.live.discard(worker)
        if not self._closed:
            self._launch()

    # ------------------------------------------------------------------ calls
    def _take(self) -> _Worker:
        """An idle worker: at once, else after growing the pool by one, the first to come free.

        Raises:
            PoolStartError: no worker is alive or starting (every start failed).
            PoolStalled: none came free for ``stall_s``.
        """
        try:
            return self.idle.get_nowait()
        except queue.Empty:
            self._grow()
        end = time.monotonic() + self.stall_s
        while True:
            try:
                return self.idle.get(timeout=min(0.5, max(0.0, end - time.monotonic())))
            except queue.Empty:
                pass
            with self._lock:
                dead = self.n_workers <= 0 or (self._start_error is not None and not self.live)
            if dead or self._closed:
                raise PoolStartError(self._start_error or f"the pool of {self.target} is closed")
            if time.monotonic() >= end:
                raise PoolStalled(
                    f"no worker of {self.target} came free for {self.stall_s:g} s "
                    f"({len(self.live)} alive of {self.n_workers}): the machine is overloaded or workers cannot start"
                )
            self._grow()  # still none: another caller holds each; grow while the pool may

    def last_timing(self) -> tuple[float, float]:
        """(seconds waiting for a worker, seconds of the call's own work) of this thread's last
        call; (nan, nan) before any."""
        return getattr(self._timing, "value", (float("nan"), float("nan")))

    def call(self, *args: Any) -> Any:
        """``function(*args)`` in a worker.

        Raises:
            CallTimeout: no result within ``timeout_s`` of handing the call to a worker (the
                call's own work; waiting for a worker never is one).
            PoolStartError: the pool could not start (:class:`PoolStalled`: no worker came free
                for ``stall_s``).
            RuntimeError: the function raised in the worker (message: its error).
        """
        t0 = time.monotonic()
        if not self._ready.is_set():
            self.start()
        with self._lock:
            self.calls += 1
        worker = self._take()
        t1 = time.monotonic()
        self._timing.value = (t1 - t0, float("nan"))
        deadline = t1 + self.timeout_s
        if not worker.send(args):
            self._replace(worker)
            return self._timed_out("worker gone")
        line = worker.read_line(deadline)
        self._timing.value = (t1 - t0, time.monotonic() - t1)
        if line is None:
            self._replace(worker)
            return self._timed_out("killed after the deadline")
        self.idle.put(worker)
        answer = json.loads(line)
        if "timeout" in answer:
            return self._timed_out("interrupted in the worker")
        if "error" in answer:
            raise RuntimeError(answer["error"])
        return answer["ok"]

    def _timed_out(self, why: str) -> Any:
        with self._lock:
            self.timeouts += 1
        raise CallTimeout(why)

    def close(self) -> None:
        """Kill every worker (also at interpreter exit)."""
        self._closed = True
        if os.getpid() != self.pid:
            return  # a forked child must not kill its parent's workers
        with self._lock:
            workers, self.live = list(self.live), set()
        for worker in workers:
            worker.kill()


# ---------------------------------------------------------------------------------------------- worker


class _SoftTimeout(BaseException):
    """Raised by the SIGALRM handler inside a worker's call (not an Exception: the function's
    own ``except Exception`` clauses must not swallow it)."""


def _on_alarm(signum: int, frame: Any) -> None:
    raise _SoftTimeout


def _answer(fn: Any, args: list[Any], soft_s: float) -> dict[str, Any]:
    try:
        signal.setitimer(signal.ITIMER_REAL, soft_s)
        try:
            return {"ok": fn(*args)}
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except _SoftTimeout:
        return {"timeout": True}
    except MemoryError:
        return {"error": "MemoryError"}
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"[:500]}


def _serve(target: str, soft_s: float, memory_bytes: int) -> None:
    """Worker main: answer JSON-line requests on stdin with JSON lines on (the original) stdout."""
    import importlib
    import resource

    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # stray prints of the function go to stderr, not into the answers
    if memory_bytes > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    module_name, fn_name = target.split(":")
    module = importlib.import_module(module_name)
    fn = getattr(module, fn_name)
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(module, "warm_up"):
        module.warm_up()
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 1)
    os.dup2(quiet, 2)  # nobody drains the pipe once the worker runs: its warnings go nowhere
    out.write(b"ready\n")
    for line in sys.stdin.buffer:
        answer = _answer(fn, json.loads(line), soft_s)
        out.write(json.dumps(answer).encode() + b"\n")


if __name__ == "__main__":
    _serve(sys.argv[1], float(sys.argv[2]), int(sys.argv[3]))
