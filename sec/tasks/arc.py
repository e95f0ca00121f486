"""ARC-1D (SEC.md §2): infer a 1-D grid transformation from 3 examples and apply it.

Levels (``conf/task/arc.yaml``): grid length 10 / 20 / 30 (train, ID) and 40 (OOD), 3 train
examples, from reasoning-gym's ``arc_1d`` generator (``min_size = max_size``). Checker:
reasoning-gym's ``ProceduralDataset.score_answer`` (exact string equality gives 1.0; containment
gives partial credit < 1) on the answer with whitespace runs collapsed to one space must be 1.0.
Time: linear in the answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sec.tasks.puzzle import PuzzleTask
from sec.tasks.registry import register

__all__ = ["ARC_INSTRUCTION", "ArcTask"]

#: Appended to reasoning-gym's ARC-1D text (SEC.md §2).
ARC_INSTRUCTION = "Your final answer must be placed in \\boxed{} and should be just the test output grid itself."
# reasoning-gym 0.1.25's own final-answer sentence, replaced by the one above.
_RG_ARC_SENTENCE = "Your final answer should be just the test output grid itself."


class ArcTask(PuzzleTask):
    """ARC-1D: reasoning-gym ``arc_1d`` items, the paper's instruction, reasoning-gym's scorer."""

    name = "arc"
    generator = "arc_1d"
    prompt_texts = (ARC_INSTRUCTION,)

    def question(self, item: Mapping[str, Any]) -> str:
        """reasoning-gym's text (3 examples, test input) with its own final-answer sentence removed
        and :data:`ARC_INSTRUCTION` appended after the test input."""
        text = str(item["question"]).replace(" " + _RG_ARC_SENTENCE, "").replace(_RG_ARC_SENTENCE, "")
        return f"{text.rstrip()}\n\n{ARC_INSTRUCTION}"

    def is_correct(self, answer_text: str, answer: Mapping[str, Any]) -> bool:
        """reasoning-gym's score of the answer with whitespace runs collapsed is 1.0."""
        return self.rg_score(" ".join(answer_text.split()), answer) == 1.0


register(ArcTask())
