"""Bare arithmetic: the curriculum testbed's task (docs/testbed.md; not in the paper).

reasoning-gym ``basic_arithmetic`` items as the testbed's model (``model=testbed_lm``,
:mod:`sec.models.testbed`) reads them: the expression without spaces, then ``=`` (``"32 - 15"`` ->
``32-15=``), with no instruction and no TinyZero template (the prompt is the question). The model
answers ``17</s>``. Checker: :class:`sec.tasks.arith.ArithTask`'s (the answer read as a number
equals the reference).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sec.tasks.arith import ArithTask
from sec.tasks.registry import register

__all__ = ["ArithBareTask", "bare_arith_prompt"]


def bare_arith_prompt(item: Mapping[str, Any]) -> str:
    """The bare prompt of a reasoning-gym ``basic_arithmetic`` item: its expression without spaces,
    then ``=`` (``"32 - 15"`` -> ``"32-15="``)."""
    return "".join(str(item["metadata"]["expression"]).split()) + "="


class ArithBareTask(ArithTask):
    """Arith with the bare prompt (:func:`bare_arith_prompt`) as both question and prompt."""

    name = "arith_bare"
    prompt_texts = ()
    prompt_template = "{question}"  # no template: the prompt is the question

    def question(self, item: Mapping[str, Any]) -> str:
        """:func:`bare_arith_prompt` of the item."""
        return bare_arith_prompt(item)


register(ArithBareTask())
