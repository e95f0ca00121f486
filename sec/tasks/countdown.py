"""Countdown (SEC.md §2): reach a target with the given numbers and + - * /, each number once.

Levels (``conf/task/countdown.yaml``): 3 / 4 / 5 numbers (train, ID) and 6 (OOD), numbers 1-100,
target 1-1000, from reasoning-gym's ``countdown`` generator.

Checker: not reasoning-gym's. reasoning-gym 0.1.25's ``CountdownDataset.score_answer`` calls
``sympy.parse_expr`` on the model text (that is ``eval``: unsafe, accepts ``**``, function calls,
symbols) and compares floats with ``np.isclose``; it returns 1.0 for e.g. ``2**3`` style answers.
:func:`countdown_correct` instead parses with :mod:`ast` and accepts only non-negative integer
literals, ``+ - * /``, unary minus and parentheses (the TinyZero character set ``[0-9+-*/() ]``),
requires the multiset of literals to equal the given numbers (each used exactly once, SEC.md §2),
and evaluates exactly with :class:`fractions.Fraction`. Unary minus is allowed because
reasoning-gym's own reference solutions are sympy-printed and start with it (e.g.
``-1 + 72*(89 - 77)/1``). Time: linear in the answer, which is capped at 512 characters.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from sec.tasks.puzzle import PuzzleTask
from sec.tasks.registry import register

__all__ = ["COUNTDOWN_QUESTION", "CountdownTask", "countdown_correct"]

#: Countdown question (SEC.md §2), built from the item's numbers and target.
COUNTDOWN_QUESTION = (
    "Using the numbers {numbers}, create an equation that equals {target}. You can use basic arithmetic "
    "operations (+, -, *, /) and each number can only be used once. Show your work and put your final "
    "answer in \\boxed{{}}, e.g. \\boxed{{(1 + 2) / 3}}."
)
# Longest countdown answer we look at; 6 numbers <= 100 with operators and parentheses fit in ~60.
_MAX_EXPR_CHARS = 512
_EXPR_CHARS_RE = re.compile(r"[0-9+\-*/()\s]+", re.ASCII)


class _Rejected(Exception):
    """The expression uses something other than integers, + - * /, unary minus and parentheses."""


def _literals(node: ast.AST) -> list[int]:
    if isinstance(node, ast.Constant):
        if type(node.value) is not int or node.value < 0:
            raise _Rejected
        return [node.value]
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
        return _literals(node.left) + _literals(node.right)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return _literals(node.operand)
    raise _Rejected


def _evaluate(node: ast.AST) -> Fraction:
    # Only called after _literals accepted the tree.
    if isinstance(node, ast.Constant):
        return Fraction(node.value)
    if isinstance(node, ast.UnaryOp):
        return -_evaluate(node.operand)
    assert isinstance(node, ast.BinOp)
    left, right = _evaluate(node.left), _evaluate(node.right)
    if isinstance(node.op, ast.Add):
        return left + right
    if isinstance(node.op, ast.Sub):
        return left - right
    if isinstance(node.op, ast.Mult):
        return left * right
    return left / right  # ZeroDivisionError is handled by the caller


def countdown_correct(expression: str, numbers: list[int], target: int) -> bool:
    """Whether ``expression`` solves a Countdown puzzle (SEC.md §2).

    Correct iff ``expression`` contains only ASCII digits, ``+ - * /``, parentheses and whitespace
    (line breaks included: every whitespace run reads as one space), parses to integer literals
    combined by binary ``+ - * /`` and unary minus, its literals are exactly the multiset
    ``numbers`` (each given number used once, none missing, none added), and it evaluates exactly
    (rational arithmetic) to ``target``. Division by zero, ``**``, ``^``, decimals,
    ``=``, names and anything longer than 512 characters are wrong. Never raises on any text.
    """
    if not isinstance(expression, str):
        return False
    expr = " ".join(expression.split())  # a line break inside the box is whitespace, not a syntax error
    if not expr or len(expr) > _MAX_EXPR_CHARS or not _EXPR_CHARS_RE.fullmatch(expr):
        return False
    try:
        tree = ast.parse(expr, mode="eval").body
        used = _literals(tree)
        if sorted(used) != sorted(int(x) for x in numbers):
            return False
        return _evaluate(tree) == Fraction(int(target))
    except (_Rejected, SyntaxError, ValueError, ZeroDivisionError, RecursionError, MemoryError, TypeError):
        return False


class CountdownTask(PuzzleTask):
    """Countdown: reasoning-gym ``countdown`` items, the paper's question, an exact checker."""

    name = "countdown"
    generator = "countdown"
    prompt_texts = (COUNTDOWN_QUESTION,)

    def question(self, item: Mapping[str, Any]) -> str:
        """Rebuilt from ``metadata.numbers`` / ``metadata.target`` (:data:`COUNTDOWN_QUESTION`)."""
        md = item["metadata"]
        numbers = "[" + ", ".join(str(int(x)) for x in md["numbers"]) + "]"
        return COUNTDOWN_QUESTION.format(numbers=numbers, target=int(md["target"]))

    def answer_payload(self, item: Mapping[str, Any]) -> dict[str, Any]:
        """The reference solution plus ``numbers`` and ``target`` (what :func:`countdown_correct` reads)."""
        return {
            **super().answer_payload(item),
            "numbers": [int(x) for x in item["metadata"]["numbers"]],
            "target": int(item["metadata"]["target"]),
        }

    def is_correct(self, answer_text: str, answer: Mapping[str, Any]) -> bool:
        """:func:`countdown_correct` with the record's numbers and target."""
        return countdown_correct(answer_text, list(answer["numbers"]), int(answer["target"]))


register(CountdownTask())
