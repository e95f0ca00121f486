"""Answer extraction and rule-based rewards for the puzzle and Math tasks (SEC.md §2).

* The answer is the content of the last ``\\boxed{...}`` of a completion (SEC.md §2: "released code
  extracts the answer from the last ``\\boxed{...}``"). The CPU benchmark task ``arith`` may instead take
  the last number of the completion (``task.answer_extraction: last_number``, :func:`extract_answer`):
  the embedded 135M model rarely writes ``\\boxed{}`` but often ends on the right number.
* Training reward: 1.0 correct, ``format_reward`` (0.1 in the paper) when a ``\\boxed{}`` is present
  but the answer is wrong, 0.0 otherwise. Validation reward: 1.0 / 0.0.
* Correctness per task (:func:`is_correct`):

  - ``countdown``: checked here, not by reasoning-gym. reasoning-gym 0.1.25's
    ``CountdownDataset.score_answer`` calls ``sympy.parse_expr`` on the model text (that is ``eval``:
    unsafe, accepts ``**``, function calls, symbols) and compares floats with ``np.isclose``; it
    returns 1.0 for e.g. ``2**3`` style answers. We instead parse with :mod:`ast` and accept only
    non-negative integer literals, ``+ - * /``, unary minus and parentheses (the TinyZero character
    set ``[0-9+-*/() ]``), require the multiset of literals to equal the given numbers
    (each used exactly once, SEC.md §2), and evaluate exactly with :class:`fractions.Fraction`.
    Unary minus is allowed because reasoning-gym's own reference solutions are sympy-printed
    and start with it (e.g. ``-1 + 72*(89 - 77)/1``).
  - ``zebra_puzzles``: reasoning-gym's ``ZebraDataset.score_answer`` (case-insensitive equality after
    removing newlines) on the stripped boxed text must be 1.0.
  - ``arc_1d``: reasoning-gym's ``ProceduralDataset.score_answer`` (exact string equality gives 1.0;
    containment gives partial credit < 1) on the boxed text with whitespace runs collapsed to one
    space must be 1.0.
  - ``basic_arithmetic`` (the CPU benchmark task ``arith``): reasoning-gym's ``score_answer`` (exact
    string equality with the integer reference, e.g. ``-4``) on the stripped answer must be 1.0.
  - ``math`` (the Math task): math-verify (``math_verify.verify(parse(gold), parse(answer))``, both
    wrapped in ``\\boxed{}`` so its LaTeX extraction reads them whole): symbolic / numeric
    equivalence, e.g. ``\\frac{1}{2}`` = ``0.5``, ``3\\sqrt{2}`` = ``\\sqrt{18}``. math-verify bounds
    each call with a SIGALRM timer, which only works on the main thread; elsewhere the answer is
    capped at ``_MAX_MATH_CHARS`` characters and checked without a timer.
"""

from __future__ import annotations

import ast
import functools
import json
import re
from collections.abc import Callable, Mapping
from fractions import Fraction
from typing import Any

__all__ = [
    "ANSWER_EXTRACTIONS",
    "SUPPORTED_GENERATORS",
    "TASK_ALIASES",
    "countdown_correct",
    "extract_answer",
    "extract_last_boxed",
    "extract_last_number",
    "is_correct",
    "math_correct",
    "puzzle_reward",
    "resolve_generator",
]

_BOXED_RE = re.compile(r"\\boxed\s*\{")
# Longest countdown answer we look at; 6 numbers <= 100 with operators and parentheses fit in ~60.
_MAX_EXPR_CHARS = 512
# a signed integer or decimal; a leading minus only where it cannot be a binary minus ("9-3" -> "3")
_NUMBER_RE = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?|\d+(?:\.\d+)?")
_EXPR_CHARS_RE = re.compile(r"[0-9+\-*/()\s]+", re.ASCII)


def extract_last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` in ``text`` (braces matched with nesting).

    Only the braced form is recognised (``\\boxed{x}``, whitespace allowed before ``{``); the
    brace-less ``\\boxed x`` form is ignored. Escaped braces are not special (``\\{`` counts as ``{``).
    The content is returned verbatim (not stripped).

    Returns:
        The text between the braces of the last ``\\boxed{``; ``None`` when there is no ``\\boxed{``,
        when the last one's braces are unbalanced (e.g. a truncated completion), or when ``text`` is
        not a ``str``. Never raises.
    """
    if not isinstance(text, str):
        return None
    matches = list(_BOXED_RE.finditer(text))
    if not matches:
        return None
    start = matches[-1].end()
    depth = 1
    for i in range(start, len(text)):
        ch = text[i]
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[start:i]
    return None


def extract_last_number(text: str) -> str | None:
    """The last number written in ``text`` (``-?digits[.digits]``), verbatim, e.g. ``"-4"``.

    A minus sign belongs to the number only when it does not follow a word character or a dot, so
    ``"9-3"`` ends on ``"3"`` while ``"= -4"`` and ``"\\boxed{-4}"`` end on ``"-4"``. Thousands
    separators are not joined (``"1,000"`` ends on ``"000"``).

    Returns:
        The number's text; ``None`` when ``text`` has no digit or is not a ``str``. Never raises.
    """
    if not isinstance(text, str):
        return None
    numbers = _NUMBER_RE.findall(text)
    return numbers[-1] if numbers else None


#: ``task.answer_extraction`` values: the paper's last ``\\boxed{}``, or the last number (``arith``)
ANSWER_EXTRACTIONS: dict[str, Callable[[str], str | None]] = {
    "boxed": extract_last_boxed,
    "last_number": extract_last_number,
}


def extract_answer(text: str, method: str = "boxed") -> str | None:
    """The final answer of a completion by ``method`` (a key of :data:`ANSWER_EXTRACTIONS`).

    Raises:
        ValueError: unknown method. Never raises on the text (``None`` = no answer).
    """
    if method not in ANSWER_EXTRACTIONS:
        raise ValueError(f"answer extraction must be one of {sorted(ANSWER_EXTRACTIONS)}, got {method!r}")
    return ANSWER_EXTRACTIONS[method](text)


# ----------------------------------------------------------------------------------------------------
# countdown


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

    Correct iff ``expression`` contains only ASCII digits, ``+ - * /``, parentheses and whitespace,
    parses to integer literals combined by binary ``+ - * /`` and unary minus, its literals are
    exactly the multiset ``numbers`` (each given number used once, none missing, none added), and it
    evaluates exactly (rational arithmetic) to ``target``. Division by zero, ``**``, ``^``, decimals,
    ``=``, names and anything longer than 512 characters are wrong. Never raises on any text.
    """
    if not isinstance(expression, str):
        return False
    expr = expression.strip()
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


# ----------------------------------------------------------------------------------------------------
# reasoning-gym scorers


@functools.cache
def _rg_scorer(generator: str) -> Callable[[str | None, dict[str, Any]], float]:
    import reasoning_gym

    return reasoning_gym.get_score_answer_fn(generator)


def _rg_entry(answer: Mapping[str, Any]) -> dict[str, Any]:
    return {"question": "", "answer": answer["answer"], "metadata": dict(answer.get("metadata") or {})}


def _zebra_correct(answer_text: str, answer: Mapping[str, Any]) -> bool:
    return _rg_scorer("zebra_puzzles")(answer_text.strip(), _rg_entry(answer)) == 1.0


def _arc_correct(answer_text: str, answer: Mapping[str, Any]) -> bool:
    return _rg_scorer("arc_1d")(" ".join(answer_text.split()), _rg_entry(answer)) == 1.0


def _arith_correct(answer_text: str, answer: Mapping[str, Any]) -> bool:
    return _rg_scorer("basic_arithmetic")(answer_text.strip(), _rg_entry(answer)) == 1.0


def _countdown_correct(answer_text: str, answer: Mapping[str, Any]) -> bool:
    return countdown_correct(answer_text, list(answer["numbers"]), int(answer["target"]))


_MAX_MATH_CHARS = 1000


def math_correct(answer_text: str, gold: str) -> bool:
    """math-verify equivalence of an extracted answer and the reference answer (module doc).

    Never raises: an answer math-verify cannot parse, or one that times out, is wrong.
    """
    import threading

    from math_verify import parse, verify

    on_main = threading.current_thread() is threading.main_thread()
    if not on_main and len(answer_text) > _MAX_MATH_CHARS:
        return False
    timeout = 5 if on_main else None
    try:
        target = parse(f"\\boxed{{{gold}}}", parsing_timeout=timeout)  # type: ignore[arg-type]
        pred = parse(f"\\boxed{{{answer_text}}}", parsing_timeout=timeout)  # type: ignore[arg-type]
        return bool(target and pred and verify(target, pred, timeout_seconds=timeout))
    except Exception:  # math-verify's TimeoutException and sympy errors alike: not a correct answer
        return False


def _math_correct(answer_text: str, answer: Mapping[str, Any]) -> bool:
    return math_correct(answer_text, str(answer["answer"]))


_CHECKERS: dict[str, Callable[[str, Mapping[str, Any]], bool]] = {
    "countdown": _countdown_correct,
    "zebra_puzzles": _zebra_correct,
    "arc_1d": _arc_correct,
    "basic_arithmetic": _arith_correct,
    "math": _math_correct,
}
#: reasoning-gym generators with a prompt builder and a correctness check.
SUPPORTED_GENERATORS: tuple[str, ...] = ("countdown", "zebra_puzzles", "arc_1d", "basic_arithmetic")
#: short task names used by the configs (``conf/task/*.yaml``) -> generator (answer checker).
TASK_ALIASES: dict[str, str] = {
    "countdown": "countdown",
    "zebra": "zebra_puzzles",
    "arc": "arc_1d",
    "arith": "basic_arithmetic",
    "math": "math",
}


def resolve_generator(task: str, answer: Mapping[str, Any] | None = None) -> str:
    """The reasoning-gym generator that scores ``task``.

    ``answer["generator"]`` (written by :mod:`sec.tasks.data`) wins; otherwise ``task`` may be a
    generator name or one of :data:`TASK_ALIASES`.

    Raises:
        ValueError: no supported generator matches.
    """
    generator = answer.get("generator") if isinstance(answer, Mapping) else None
    if not isinstance(generator, str):
        generator = TASK_ALIASES.get(task, task)
    if generator not in _CHECKERS:
        known = sorted(set(TASK_ALIASES) | set(_CHECKERS))
        raise ValueError(f"unknown puzzle task {task!r}; supported: {known}")
    return generator


def is_correct(task: str, answer_text: str, answer: Mapping[str, Any]) -> bool:
    """Whether ``answer_text`` (an extracted final answer, not a whole completion) solves the item.

    Args:
        task: task name (``countdown``/``zebra``/``arc``) or reasoning-gym generator name.
        answer_text: the model's final answer, e.g. the content of its last ``\\boxed{}``.
        answer: the record's decoded ``answer`` dict: ``{"answer": reference, "generator": ...}`` plus
            ``numbers``/``target`` for countdown and ``metadata`` for the reasoning-gym scorers.

    Rules are in the module docstring (countdown: own exact check; zebra/arc: reasoning-gym's
    ``score_answer == 1.0``).

    Raises:
        ValueError: unknown task. Malformed model text never raises (it is just wrong).
    """
    checker = _CHECKERS[resolve_generator(task, answer)]
    if not isinstance(answer_text, str):
        return False
    try:
        return bool(checker(answer_text, answer))
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
    """Reward of one completion for one problem record, puzzle or Math (SEC.md §2).

    Args:
        completion: the model's generated text (anything; non-``str`` counts as no answer).
        record: a problem record with at least ``task`` (str) and ``answer`` (JSON string, see
            :func:`is_correct`).
        train: training reward (1.0 / ``format_reward`` / 0.0) when True, validation (1.0 / 0.0)
            when False.
        format_reward: training reward of a present (balanced) but wrong ``\\boxed{}``; the paper
            uses 0.1. With ``extraction="last_number"``, of a completion with a wrong last number.
        extraction: how the answer is read (:func:`extract_answer`): ``boxed`` (the paper's) or
            ``last_number``.

    Returns:
        A float in {0.0, format_reward, 1.0}.

    Raises:
        ValueError / KeyError: only for a malformed *record* (unknown task, undecodable answer,
        missing field) or an unknown ``extraction``; nothing in ``completion`` can make it raise.
    """
    answer = _decode_answer(record["answer"])
    task = str(record["task"])
    resolve_generator(task, answer)  # config errors surface eagerly, not as "wrong answer"
    boxed = extract_answer(completion, extraction)
    if boxed is None:
        return 0.0
    if is_correct(task, boxed, answer):
        return 1.0
    return float(format_reward) if train else 0.0
