"""The tasks of SEC.md §2, one module each (``countdown``, ``zebra``, ``arc``, ``arith``, ``math``),
registered by name (:mod:`sec.tasks.registry`); their shared data side (:mod:`sec.tasks.puzzle`,
:mod:`sec.tasks.generation`, :mod:`sec.tasks.cache`), answer reading (:mod:`sec.tasks.answers`)
and rewards (:mod:`sec.tasks.rewards`). Importing this package imports no task module (a task's
module is imported when its config's ``task.module`` or its name is first looked up) and none of
the names below until one is used, so that a reward worker process (:mod:`sec.tasks.bounded`)
starts without pandas or reasoning-gym.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> the module that defines it
_EXPORTS = {
    "DATA_FORMAT_VERSION": "sec.tasks.data",
    "RECORD_COLUMNS": "sec.tasks.records",
    "TINYZERO_TEMPLATE": "sec.tasks.records",
    "ItemGenerationError": "sec.tasks.generation",
    "Task": "sec.tasks.registry",
    "cache_key": "sec.tasks.data",
    "derive_seed": "sec.tasks.generation",
    "extract_last_boxed": "sec.tasks.answers",
    "generate_items": "sec.tasks.generation",
    "get_task": "sec.tasks.registry",
    "is_correct": "sec.tasks.rewards",
    "load_task_data": "sec.tasks.data",
    "puzzle_reward": "sec.tasks.rewards",
    "register": "sec.tasks.registry",
    "render_prompt": "sec.tasks.records",
    "task_for": "sec.tasks.registry",
    "task_labels": "sec.tasks.registry",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'sec.tasks' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
