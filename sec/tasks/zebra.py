"""Zebra puzzles (SEC.md §2): who owns what, from clues.

Levels (``conf/task/zebra.yaml``): 3 / 4 / 5 houses with as many attributes (train, ID) and 6
(OOD), from reasoning-gym's ``zebra_puzzles`` generator. Checker: reasoning-gym's
``ZebraDataset.score_answer`` (case-insensitive equality after removing newlines) on the stripped
answer must be 1.0. Time: linear in the answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sec.tasks.puzzle import PuzzleTask
from sec.tasks.registry import register

__all__ = ["ZEBRA_INSTRUCTION", "ZebraTask"]

#: Appended to reasoning-gym's zebra puzzle text (SEC.md §2).
ZEBRA_INSTRUCTION = "Provide only the name of the person as your final answer in \\boxed{}, e.g. \\boxed{Alice}."
# reasoning-gym 0.1.25's own answer-format sentence, replaced by the one above.
_RG_ZEBRA_SUFFIX = "? Provide only the name of the person as your final answer."


class ZebraTask(PuzzleTask):
    """Zebra: reasoning-gym ``zebra_puzzles`` items, the paper's instruction, reasoning-gym's scorer."""

    name = "zebra"
    generator = "zebra_puzzles"
    prompt_texts = (ZEBRA_INSTRUCTION,)

    def question(self, item: Mapping[str, Any]) -> str:
        """reasoning-gym's puzzle text with its trailing "? Provide only the name ..." (which also
        doubles the question mark) replaced by ``?`` + :data:`ZEBRA_INSTRUCTION`."""
        text = str(item["question"]).rstrip()
        text = text.removesuffix(_RG_ZEBRA_SUFFIX).rstrip()
        if not text.endswith("?"):
            text += "?"
        return f"{text} {ZEBRA_INSTRUCTION}"

    def is_correct(self, answer_text: str, answer: Mapping[str, Any]) -> bool:
        """reasoning-gym's score of the stripped answer is 1.0."""
        return self.rg_score(answer_text.strip(), answer) == 1.0


register(ZebraTask())
