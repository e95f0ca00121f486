"""The verl internals that no registry reaches, replaced for the CPU platform (and only there).

Every other part of verl's CPU run goes through verl's public extension points
(:mod:`sec.backends.verl.cpu`). What is left is listed in :data:`REPLACEMENTS`: each entry names
the verl function it replaces (module, attribute, file and line in verl 0.9.1) and the sha256 of
that function's source as this module was written against; ``tests/test_verl_cpu.py`` fails when
verl's source of a replaced function changes, so a verl upgrade re-checks each one.

:func:`install` runs inside ``import verl`` (through :mod:`sec.backends.verl.cpu`) when
``VERL_PLATFORM=cpu``: before any verl module has imported the names replaced here.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Replacement:
    """One replaced verl function.

    Attributes:
        module: the verl module that defines it.
        name: its attribute name there.
        where: file and line in verl 0.9.1 (for a reader).
        source_sha256: sha256 of ``inspect.getsource`` of verl's function as replaced here.
        why: what verl's code does on a CPU and what the replacement does instead.
        make: builds the replacement from verl's original.
    """

    module: str
    name: str
    where: str
    source_sha256: str
    why: str
    make: Callable[[Callable[..., Any]], Callable[..., Any]]

    def original(self) -> Callable[..., Any]:
        fn = getattr(importlib.import_module(self.module), self.name)
        return getattr(fn, "__sec_original__", fn)

    def source_digest(self) -> str:
        return hashlib.sha256(inspect.getsource(self.original()).encode()).hexdigest()


def _gloo_process_group(original: Callable[..., Any]) -> Callable[..., Any]:
    def initialize_global_process_group_ray(timeout_second: int | None = None, backend: str | None = None) -> None:
        """verl's ``initialize_global_process_group_ray`` with the gloo backend for CPU tensors
        (verl's default string would be ``cpu:gloo,cpu:gloo`` on this platform)."""
        return original(timeout_second=timeout_second, backend=backend or "cpu:gloo")

    initialize_global_process_group_ray.__sec_original__ = original  # type: ignore[attr-defined]
    return initialize_global_process_group_ray


REPLACEMENTS: tuple[Replacement, ...] = (
    Replacement(
        module="verl.utils.distributed",
        name="initialize_global_process_group_ray",
        where="verl/utils/distributed.py:83-99",
        source_sha256="761a94d1a2e058d31a0ac231c89a142abf5daf822e333bac75e84cafcf7507ac",
        why=(
            "builds the backend string f'cpu:gloo,{device}:{backend}'; with device 'cpu' torch rejects "
            "'cpu:gloo,cpu:gloo' (a device type twice). The replacement passes 'cpu:gloo' (every worker "
            "calls it from verl/workers/engine_workers.py, which imports the name at module load)."
        ),
        make=_gloo_process_group,
    ),
)


def install() -> list[str]:
    """Apply every replacement (idempotent); returns the replaced ``module.name``s."""
    done = []
    for r in REPLACEMENTS:
        mod = importlib.import_module(r.module)
        current = getattr(mod, r.name)
        if getattr(current, "__sec_original__", None) is None:
            setattr(mod, r.name, r.make(current))
        done.append(f"{r.module}.{r.name}")
    return done
