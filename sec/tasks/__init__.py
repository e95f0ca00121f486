"""The tasks of SEC.md §2, one module each (``countdown``, ``zebra``, ``arc``, ``arith``, ``math``),
registered by name (:mod:`sec.tasks.registry`); their shared data side (:mod:`sec.tasks.puzzle`,
:mod:`sec.tasks.generation`, :mod:`sec.tasks.cache`), answer reading (:mod:`sec.tasks.answers`)
and rewards (:mod:`sec.tasks.rewards`). Importing this package imports no task module: a task's
module is imported when its config (``task.module``) or name is first looked up.
"""

from sec.tasks.answers import extract_last_boxed
from sec.tasks.data import DATA_FORMAT_VERSION, RECORD_COLUMNS, cache_key, load_task_data
from sec.tasks.generation import ItemGenerationError, derive_seed, generate_items
from sec.tasks.records import TINYZERO_TEMPLATE, render_prompt
from sec.tasks.registry import Task, get_task, register, task_for, task_labels
from sec.tasks.rewards import is_correct, puzzle_reward

__all__ = [
    "DATA_FORMAT_VERSION",
    "RECORD_COLUMNS",
    "TINYZERO_TEMPLATE",
    "ItemGenerationError",
    "Task",
    "cache_key",
    "derive_seed",
    "extract_last_boxed",
    "generate_items",
    "get_task",
    "is_correct",
    "load_task_data",
    "puzzle_reward",
    "register",
    "render_prompt",
    "task_for",
    "task_labels",
]
