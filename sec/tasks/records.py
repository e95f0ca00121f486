"""The problem record every task produces (docs: ARCHITECTURE "Problem record") and the paper's
prompt template (SEC.md §2).

Record schema (one parquet row, :data:`RECORD_COLUMNS`):

============ ====== =================================================================================
``id``       str    unique, e.g. ``"{task}/{split}/L{level}/{k:05d}"``
``task``     str    the task's registered name (``conf/task/<name>.yaml``'s ``name``)
``level``    int    difficulty level, 1 = easiest (0: an eval set without levels)
``split``    str    ``"train"`` or ``"test"``
``question`` str    the paper's question text
``prompt``   str    ``question`` rendered in the TinyZero template (the model input)
``answer``   str    JSON object: the task's answer payload (``generator`` + what its checker reads)
``metadata`` str    JSON of the source item's metadata (may be ``"{}"``)
============ ====== =================================================================================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

__all__ = ["RECORD_COLUMNS", "TINYZERO_TEMPLATE", "ItemSource", "plain", "render_prompt"]

RECORD_COLUMNS: tuple[str, ...] = ("id", "task", "level", "split", "question", "prompt", "answer", "metadata")

#: The paper's plain TinyZero prompt (SEC.md §2; no chat template).
TINYZERO_TEMPLATE = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
    "The assistant first thinks about the reasoning process in the mind and then provides the user "
    "with the answer.\nUser: {question}\nAssistant: Let me solve this step by step."
)


class ItemSource(Protocol):
    """What the item generators (:mod:`sec.tasks.generation`, :mod:`sec.tasks.timed_items`) need of
    a task generated item by item, e.g. :class:`sec.tasks.puzzle.PuzzleTask`: its name, a dataset of
    items per level, and an item's question, prompt and answer payload."""

    name: str
    prompt_template: str

    def make_dataset(self, level_kwargs: Mapping[str, Any], seed: int) -> Any: ...

    def question(self, item: Mapping[str, Any]) -> str: ...

    def answer_payload(self, item: Mapping[str, Any]) -> dict[str, Any]: ...


def render_prompt(question: str) -> str:
    """The question inside :data:`TINYZERO_TEMPLATE` (the model's full input text)."""
    return TINYZERO_TEMPLATE.format(question=question)


def plain(obj: Any, str_keys: bool = False) -> Any:
    """Mappings/sequences (OmegaConf containers included) -> dicts/lists of plain values; keys
    turned into ``str`` when ``str_keys``."""
    if isinstance(obj, Mapping):
        return {(str(k) if str_keys else k): plain(v, str_keys) for k, v in obj.items()}
    if isinstance(obj, Sequence) and not isinstance(obj, (str, bytes)):
        return [plain(v, str_keys) for v in obj]
    return obj
