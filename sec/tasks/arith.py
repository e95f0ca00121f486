"""Arithmetic (reasoning-gym ``basic_arithmetic``): the CPU benchmark task, not in the paper.

A task the embedded SmolLM2-135M partly solves, so that curricula differ measurably on a CPU
(``conf/task/arith.yaml``: levels grow the operators, digits and terms). Checker: the answer read
as a number equals the integer reference (:func:`sec.tasks.answers.read_number`: ``−4``,
``-4.0``, ``1,234``, ``1e3``, ``3 \\times 10^{2}`` are read as a reader reads them; the same rule
as the ``last_number`` extraction, docs/rewards.md); an answer that is not one number falls back to
reasoning-gym's ``score_answer`` (exact string equality) == 1.0. Time: linear in the answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sec.tasks.answers import read_number
from sec.tasks.puzzle import PuzzleTask
from sec.tasks.registry import register

__all__ = ["ARITH_INSTRUCTION", "ArithTask"]

#: Appended to reasoning-gym's basic_arithmetic question.
ARITH_INSTRUCTION = "Give only the final answer inside \\boxed{}."


class ArithTask(PuzzleTask):
    """Arith: reasoning-gym ``basic_arithmetic`` items (``Calculate 4 - 1.``) + :data:`ARITH_INSTRUCTION`."""

    name = "arith"
    generator = "basic_arithmetic"
    prompt_texts = (ARITH_INSTRUCTION,)

    def question(self, item: Mapping[str, Any]) -> str:
        """reasoning-gym's question, then :data:`ARITH_INSTRUCTION`."""
        return f"{str(item['question']).rstrip()} {ARITH_INSTRUCTION}"

    def is_correct(self, answer_text: str, answer: Mapping[str, Any]) -> bool:
        """The answer's value equals the reference's (module doc)."""
        got, reference = read_number(answer_text), read_number(str(answer["answer"]))
        if got is not None and reference is not None:
            return got == reference
        return self.rg_score(answer_text.strip(), answer) == 1.0


register(ArithTask())
