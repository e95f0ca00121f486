"""Rule-based rewards for every task (SEC.md §2): the answer a completion gives, checked by its
task's checker (:meth:`sec.tasks.registry.Task.is_correct`, in the task's module).

* The answer is read by ``task.answer_extraction`` (:mod:`sec.tasks.answers`): the content of the
  last ``\\boxed{...}`` (the paper's rule) or, for the CPU benchmark task ``arith``, the last number.
* Training reward: 1.0 correct, ``format_reward`` (``task.format_reward``: 0.1 for the paper's
  puzzles, 0.0 for Math) when an answer is present but wrong, 0.0 otherwise. Validation reward:
  1.0 / 0.0. ``format_reward`` and the extraction have no default here: they come from the task
  config, the one place the paper's values live.
* Time: every call returns within a bound on any thread or process (docs/rewards.md): the puzzle
  checkers are linear in the answer; Math runs in worker processes with a deadline
  (:data:`sec.tasks.math.VERIFY_TIMEOUT_S`). A check that times out scores 0 and is counted
  (:func:`pop_reward_counts`, the ``reward/timeouts`` of the train metrics).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sec.tasks.answers import ANSWER_EXTRACTIONS, extract_answer, extract_last_boxed, extract_last_number
from sec.tasks.bounded import CallTimeout, PoolStartError
from sec.tasks.registry import Task, get_task, registered_tasks

__all__ = [
    "ANSWER_EXTRACTIONS",
    "Score",
    "extract_answer",
    "extract_last_boxed",
    "extract_last_number",
    "is_correct",
    "pop_reward_counts",
    "puzzle_reward",
    "score_completion",
    "task_of",
]

_COUNTS = {"reward/checks": 0, "reward/timeouts": 0, "reward/eval_checks": 0, "reward/eval_timeouts": 0}
_COUNTS_LOCK = threading.Lock()


def _count(score: Score, train: bool) -> None:
    if not score.answered:
        return
    prefix = "reward/" if train else "reward/eval_"
    with _COUNTS_LOCK:
        _COUNTS[prefix + "checks"] += 1
        _COUNTS[prefix + "timeouts"] += int(score.timed_out)


def pop_reward_counts() -> dict[str, int]:
    """Answers :func:`puzzle_reward` checked in this process since the last call, and the checks
    among them that timed out (scored 0): ``reward/checks`` and ``reward/timeouts`` for training
    rewards, ``reward/eval_checks`` and ``reward/eval_timeouts`` for validation; resets them."""
    with _COUNTS_LOCK:
        out = dict(_COUNTS)
        for key in _COUNTS:
            _COUNTS[key] = 0
    return out


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


def _check(task: str, answer_text: str, answer: Mapping[str, Any]) -> tuple[bool, bool]:
    """``(correct, timed_out)`` of one extracted answer (counted in :func:`pop_reward_counts`)."""
    checker = task_of(task, answer)
    if not isinstance(answer_text, str):
        return False, False
    try:
        correct, timed_out = bool(checker.is_correct(answer_text, answer)), False
    except CallTimeout:
        correct, timed_out = False, True
    except PoolStartError:
        raise  # the checker's machinery is broken: not a verdict on the answer
    except Exception:  # a checker choking on model text means the text is wrong
        correct, timed_out = False, False
    return correct, timed_out


def is_correct(task: str, answer_text: str, answer: Mapping[str, Any]) -> bool:
    """Whether ``answer_text`` (an extracted final answer, not a whole completion) solves the item.

    Args:
        task: the task's registered name (``countdown``/``zebra``/``arc``/``arith``/``math``) or its
            answer payload's ``generator`` (``zebra_puzzles``, ...).
        answer_text: the model's final answer, e.g. the content of its last ``\\boxed{}``.
        answer: the record's decoded ``answer`` dict (the task's answer payload).

    Raises:
        ValueError: unknown task. Malformed model text never raises (it is just wrong); a check
        that times out is wrong.
    """
    return _check(task, answer_text, answer)[0]


def _decode_answer(raw: Any) -> Mapping[str, Any]:
    if isinstance(raw, Mapping):
        return raw
    if isinstance(raw, (str, bytes)):
        decoded = json.loads(raw)
        if isinstance(decoded, Mapping):
            return decoded
    raise ValueError(f"record 'answer' must be a JSON object string, got {type(raw).__name__}")


@dataclass(frozen=True)
class Score:
    """What one completion earned: an answer was found, it was correct, its check timed out."""

    answered: bool
    correct: bool
    timed_out: bool

    def reward(self, *, train: bool, format_reward: float) -> float:
        """1.0 correct; ``format_reward`` answered but wrong in training (not after a timeout:
        the check did not say wrong); else 0.0."""
        if self.correct:
            return 1.0
        return float(format_reward) if train and self.answered and not self.timed_out else 0.0


def score_completion(completion: str, record: Mapping[str, Any], *, extraction: str) -> Score:
    """Read and check one completion's answer for one problem record, once.

    Args:
        completion: the model's generated text (anything; non-``str`` counts as no answer).
        record: a problem record with at least ``task`` (str) and ``answer`` (JSON string).
        extraction: ``task.answer_extraction`` (:data:`ANSWER_EXTRACTIONS`).

    Raises:
        ValueError / KeyError: only for a malformed *record* (unknown task, undecodable answer,
        missing field) or an unknown ``extraction``; nothing in ``completion`` can make it raise.
    """
    answer = _decode_answer(record["answer"])
    task = str(record["task"])
    task_of(task, answer)  # config errors surface eagerly, not as "wrong answer"
    text = extract_answer(completion, extraction)
    if text is None:
        return Score(answered=False, correct=False, timed_out=False)
    correct, timed_out = _check(task, text, answer)
    return Score(answered=True, correct=correct, timed_out=timed_out)


def puzzle_reward(
    completion: str, record: Mapping[str, Any], *, train: bool, format_reward: float, extraction: str
) -> float:
    """Reward of one completion for one problem record, any task (SEC.md §2).

    Args:
        completion: the model's generated text (anything; non-``str`` counts as no answer).
        record: a problem record with at least ``task`` (str) and ``answer`` (JSON string, see
            :func:`is_correct`).
        train: training reward (1.0 / ``format_reward`` / 0.0) when True, validation (1.0 / 0.0)
            when False.
        format_reward: ``task.format_reward``, the training reward of a present (balanced) but wrong
            ``\\boxed{}`` (with ``extraction="last_number"``, of a wrong last number).
        extraction: ``task.answer_extraction``: ``boxed`` (the paper's) or ``last_number``.

    Returns:
        A float in {0.0, format_reward, 1.0}; 0.0 when the check timed out (counted:
        :func:`pop_reward_counts`).

    Raises:
        ValueError / KeyError: see :func:`score_completion`.
    """
    score = score_completion(completion, record, extraction=extraction)
    _count(score, train)
    return score.reward(train=train, format_reward=format_reward)
