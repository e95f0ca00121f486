"""Functions the worker processes of tests/test_bounded.py run (importable by name)."""

from __future__ import annotations

import os
import signal
import time


def echo(x):
    return x


def stuck() -> str:
    """Like a long C-level computation: the worker's timer signal is blocked, so only the kill
    at the deadline ends it."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    return slow_python(3600)


def slow_python(seconds: float) -> str:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return "done"


def boom() -> None:
    raise ValueError("bad input")


def die() -> None:
    os._exit(3)


def hog() -> int:
    return len(bytearray(8 << 30))  # past the worker's address-space limit
