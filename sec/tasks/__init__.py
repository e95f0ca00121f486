"""The tasks of SEC.md §2: reasoning-gym puzzles (generation, prompts, cached data), Math (sec.tasks.math), rewards."""

from sec.tasks.data import DATA_FORMAT_VERSION, RECORD_COLUMNS, cache_key, load_task_data
from sec.tasks.puzzles import (
    TINYZERO_TEMPLATE,
    ItemGenerationError,
    build_question,
    derive_seed,
    generate_items,
    render_prompt,
)
from sec.tasks.rewards import SUPPORTED_GENERATORS, extract_last_boxed, is_correct, puzzle_reward

__all__ = [
    "DATA_FORMAT_VERSION",
    "RECORD_COLUMNS",
    "SUPPORTED_GENERATORS",
    "TINYZERO_TEMPLATE",
    "ItemGenerationError",
    "build_question",
    "cache_key",
    "derive_seed",
    "extract_last_boxed",
    "generate_items",
    "is_correct",
    "load_task_data",
    "puzzle_reward",
    "render_prompt",
]
