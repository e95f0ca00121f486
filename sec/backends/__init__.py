"""RL engines. Each backend is one module with ``train(workspace)``; the curriculum reaches
it only through :class:`sec.backends.feed.CurriculumFeed`."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

#: backend name (the ``backend/`` config group) -> module
BACKENDS = {"trl": "sec.backends.trl"}


def get_backend(name: str) -> Callable[[Any], None]:
    """The ``train(workspace)`` function of a backend.

    Raises:
        ValueError: for an unknown backend name.
    """
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; expected one of {', '.join(BACKENDS)}")
    return importlib.import_module(BACKENDS[name]).train
