"""Reversed-answer addition: the task of the testbed's chained regime (docs/testbed.md; not in the paper).

reasoning-gym ``basic_arithmetic`` items with the bare prompt of ``arith_bare`` (``352+17=``), answered
with the sum's digits least-significant first (369 -> ``963``, then EOS). Written in the order it is
computed, every answer digit depends on the two aligned operand digits and one carry; the literature
reports this format makes addition learnable by small transformers from less data (Lee et al. 2023,
*Teaching Arithmetic to Small Transformers*, "reverse" format) and, with suitable position encodings,
extendable to longer numbers (Zhou et al. 2024). Measured here (docs/testbed.md, the regime probe):
the testbed model learns two-digit sums in this format but does not reach three digits. Levels are
digit counts.

Checker: the completion's last run of digits as written (``task.answer_extraction: last_digits``,
:func:`sec.tasks.answers.extract_last_digits`, leading zeros kept) equals the reversed sum exactly;
the sum in the usual order scores 0 (unless it reads the same both ways). Time: linear in the answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sec.tasks.arith_bare import ArithBareTask
from sec.tasks.registry import register

__all__ = ["ArithRevTask", "reversed_digits"]


def reversed_digits(answer: Any) -> str:
    """The decimal digits of a non-negative integer answer, least-significant first
    (``369`` / ``"369"`` -> ``"963"``, ``10`` -> ``"01"``).

    Raises:
        ValueError: the answer is not a non-negative integer (the task's levels use ``+`` only).
    """
    text = str(answer).strip()
    if not text.isdigit():
        raise ValueError(f"arith_rev answers are non-negative integers, got {answer!r} (levels must use '+' only)")
    return str(int(text))[::-1]


class ArithRevTask(ArithBareTask):
    """``arith_bare``'s bare prompt (``352+17=``), answered least-significant digit first (module doc)."""

    name = "arith_rev"

    def answer_payload(self, item: Mapping[str, Any]) -> dict[str, Any]:
        """The reference: the reversed sum (:func:`reversed_digits`), which is also what the
        testbed model pre-trains to write."""
        return {"generator": self.generator, "answer": reversed_digits(item["answer"])}

    def validate_level(self, name: str, level: int, kwargs: dict[str, Any]) -> dict[str, Any]:
        """``basic_arithmetic`` settings with ``+`` as the only operator and no negation.

        Raises:
            ValueError: another operator, or negation (their answers have no reversed digits).
        """
        kwargs = super().validate_level(name, level, kwargs)
        if list(kwargs.get("operators", ["+"])) != ["+"] or kwargs.get("allow_negation", False):
            raise ValueError(
                f"task {name!r} level {level}: arith_rev levels are sums: operators must be ['+'] and "
                f"allow_negation false, got operators={kwargs.get('operators')!r}"
            )
        return kwargs

    def is_correct(self, answer_text: str, answer: Mapping[str, Any]) -> bool:
        """The extracted digits equal the reversed sum, as strings (module doc)."""
        return str(answer_text).strip() == str(answer["answer"])


register(ArithRevTask())
