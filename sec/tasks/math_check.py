"""math-verify equivalence of a final answer and the reference (the Math checker's work), as run
inside the worker processes of :mod:`sec.tasks.bounded`: both are wrapped in ``\\boxed{}`` so that
math-verify's LaTeX extraction reads them whole (``math_verify.verify(parse(gold), parse(answer))``:
symbolic / numeric equivalence, e.g. ``\\frac{1}{2}`` = ``0.5``, ``3\\sqrt{2}`` = ``\\sqrt{18}``).

math-verify's own ``SIGALRM`` timeouts are switched off here: the worker's timer and the pool's
deadline bound the call instead (they share the one ``ITIMER_REAL`` of the process). This module
imports only math-verify, so a replacement worker starts quickly.
"""

from __future__ import annotations

import functools
from typing import Any

__all__ = ["verify_pair", "warm_up"]


@functools.lru_cache(maxsize=4096)
def _parsed_gold(gold: str) -> tuple[Any, ...]:
    """The parsed reference, kept: a group's rollouts (8 per problem in the paper) share it."""
    from math_verify import parse

    return tuple(parse(f"\\boxed{{{gold}}}", parsing_timeout=None))  # type: ignore[arg-type]


def verify_pair(gold: str, answer: str) -> bool:
    """Whether ``answer`` is equivalent to ``gold`` by math-verify; an answer (or a reference)
    math-verify cannot parse is not equivalent. Unbounded in time: call it through the pool."""
    from math_verify import parse, verify

    target = list(_parsed_gold(gold))
    pred = parse(f"\\boxed{{{answer}}}", parsing_timeout=None)  # type: ignore[arg-type]
    return bool(target and pred and verify(target, pred, timeout_seconds=None))


#: answers whose first check imports or builds something in sympy (tuples, intervals, pi,
#: roots, matrices, sets, percentages, text choices)
_WARM_UP = [
    ("\\frac{1}{2}", "0.5"),
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3, \\pi/2)"),
    ("[1, 2)", "[1,2)"),
    ("3\\sqrt{2}", "\\sqrt{18}"),
    ("x^2+1", "1+x^2"),
    ("\\{1, 2\\}", "\\{2, 1\\}"),
    ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}"),
    ("10\\%", "10"),
    ("\\text{(A)}", "A"),
]


def warm_up() -> None:
    """A few checks, so that sympy's lazy imports happen before the worker takes requests."""
    for gold, answer in _WARM_UP:
        verify_pair(gold, answer)
    _parsed_gold.cache_clear()
