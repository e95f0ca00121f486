"""Reading a completion's final answer (SEC.md §2): the last ``\\boxed{...}`` (the paper's rule,
"released code extracts the answer from the last ``\\boxed{...}``"), or the last number (the CPU
benchmark task ``arith``, ``task.answer_extraction: last_number``: the embedded 135M model rarely
writes ``\\boxed{}`` but often ends on the right number).
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = ["ANSWER_EXTRACTIONS", "extract_answer", "extract_last_boxed", "extract_last_number"]

_BOXED_RE = re.compile(r"\\boxed\s*\{")
# a signed integer or decimal; a leading minus only where it cannot be a binary minus ("9-3" -> "3")
_NUMBER_RE = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?|\d+(?:\.\d+)?")


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
