"""RL engines. Each backend is one module with ``train(workspace)``; the curriculum reaches
it only through :class:`sec.curriculum.feed.CurriculumFeed`."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

#: backend name (the ``backend/`` config group) -> module
BACKENDS = {"trl": "sec.backends.trl", "verl": "sec.backends.verl"}


def get_backend(name: str) -> Callable[[Any], None]:
    """The ``train(workspace)`` function of a backend.

    Raises:
        ValueError: for an unknown backend name.
    """
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; expected one of {', '.join(BACKENDS)}")
    return importlib.import_module(BACKENDS[name]).train


def get_dry_run(name: str) -> Callable[[Any], None]:
    """The ``dry_run(workspace)`` function of a backend (``backend.dry_run=true``): prints what
    the backend would run without training.

    Raises:
        ValueError: for an unknown backend or one without a dry run.
    """
    module = importlib.import_module(BACKENDS[name]) if name in BACKENDS else None
    if module is None or not hasattr(module, "dry_run"):
        raise ValueError(f"backend.dry_run: backend {name!r} has no dry run; backends with one: verl")
    return module.dry_run
