"""Rule-based rewards for every task (SEC.md §2): the answer a completion gives, checked by its
task's checker (:meth:`sec.tasks.registry.Task.is_correct`, in the task's module).

* The answer is read by ``task.answer_extraction`` (:mod:`sec.tasks.answers`): the content of the
  last ``\\boxed{...}`` (the paper's rule) or, for the CPU benchmark task ``arith``, the last number.
* Training reward: 1.0 correct, ``format_reward`` (0.1 in the paper's puzzles, 0.0 for Math) when an
  answer is present but wrong, 0.0 otherwise. Validation reward: 1.0 / 0.0.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sec.tasks.answers import ANSWER_EXTRACTIONS, extract_answer, extract_last_boxed, extract_last_number
from sec.tasks.registry import Task, get_task, registered_tasks

__all__ = [
    "ANSWER_EXTRACTIONS",
    "extract_answer",
    "extract_last_boxed",
    "extract_last_number",
    "is_correct",
    "puzzle_reward",
    "task_of",
]


def task_of(task: str, answer: Mapping[str, Any] | None = None, module: str | None = None) -> Task:
    """The task that scores a record of task ``task`` (its registered name, importing ``module``
    or ``sec.tasks.<task>``); else the registered task whose answer payload ``generator`` is
    ``task`` or ``answer["generator"]``.

    Raises:
        ValueError: no task matches.
    """
    try:
        return get_task(task, module)
    except ValueError as err:
        generator = answer.get("generator") if isinstance(answer, Mapping) else None
        for candidate in registered_tasks().values():
            if candidate.answer_key in (task, generator):
                return candidate
        raise ValueError(f"unknown puzzle task {task!r} ({err})") from None


def is_correct(task: str, answer_text: str, answer: Mapping[str, Any]) -> bool:
    """Whether ``answer_text`` (an extracted final answer, not a whole completion) solves the item.

    Args:
        task: the task's registered name (``countdown``/``zebra``/``arc``/``arith``/``math``) or its
            answer payload's ``generator`` (``zebra_puzzles``, ...).
        answer_text: the model's final answer, e.g. the content of its last ``\\boxed{}``.
        answer: the record's decoded ``answer`` dict (the task's answer payload).

    Raises:
        ValueError: unknown task. Malformed model text never raises (it is just wrong).
    """
    checker = task_of(task, answer)
    if not isinstance(answer_text, str):
        return False
    try:
        return bool(checker.is_correct(answer_text, answer))
    except Exception:  # a checker choking on model text means the text is wrong
        return False


def _decode_answer(raw: Any) -> Mapping[str, Any]:
    if isinstance(raw, Mapping):
        return raw
    if isinstance(raw, (str, bytes)):
        decoded = json.loads(raw)
        if isinstance(decoded, Mapping):
            return decoded
    raise ValueError(f"record 'answer' must be a JSON object string, got {type(raw).__name__}")


def puzzle_reward(
    completion: str,
    record: Mapping[str, Any],
    *,
    train: bool,
    format_reward: float = 0.1,
    extraction: str = "boxed",
) -> float:
    """Reward of one completion for one problem record, any task (SEC.md §2).

    Args:
        completion: the model's generated text (anything; non-``str`` counts as no answer).
        record: a problem record with at least ``task`` (str) and ``answer`` (JSON string, see
            :func:`is_correct`).
        train: training reward (1.0 / ``format_reward`` / 0.0) when True, validation (1.0 / 0.0)
            when False.
        format_reward: training reward of a present (balanced) but wrong ``\\boxed{}``; the paper
            uses 0.1. With ``extraction="last_number"``, of a completion with a wrong last number.
        extraction: how the answer is read (:func:`sec.tasks.answers.extract_answer`): ``boxed``
            (the paper's) or ``last_number``.

    Returns:
        A float in {0.0, format_reward, 1.0}.

    Raises:
        ValueError / KeyError: only for a malformed *record* (unknown task, undecodable answer,
        missing field) or an unknown ``extraction``; nothing in ``completion`` can make it raise.
    """
    answer = _decode_answer(record["answer"])
    task = str(record["task"])
    task_of(task, answer)  # config errors surface eagerly, not as "wrong answer"
    boxed = extract_answer(completion, extraction)
    if boxed is None:
        return 0.0
    if is_correct(task, boxed, answer):
        return 1.0
    return float(format_reward) if train else 0.0
