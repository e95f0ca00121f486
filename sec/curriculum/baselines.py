"""Baseline curricula of SEC.md §1: random (no curriculum), ordered (easy to hard) and
reverse (hard to easy). Same interface as the SEC bandit; they ignore the learning signal."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sec.curriculum.base import Arm, CurriculumPolicy


class RandomCurriculum(CurriculumPolicy):
    """No curriculum: problems drawn uniformly from the whole training set, so categories
    appear in proportion to their size (SEC.md §1, "random").

    Draws are without replacement within an epoch (a fresh permutation of the training set
    each pass), as a shuffled data loader does.
    """

    def __init__(
        self, arm_of_problem: Sequence[Arm], *, name: str, arm_fields: Sequence[str], total_steps: int, seed: int
    ) -> None:
        super().__init__(arm_of_problem, name=name, arm_fields=arm_fields, total_steps=total_steps, seed=seed)
        self._new_epoch()

    def _new_epoch(self) -> None:
        # the permutation is a function of the RNG state at the epoch start, so the state
        # dict stores that state and a cursor instead of N indices
        self._epoch_rng_state = self.rng.bit_generator.state
        self._perm = self.rng.permutation(self.arm_index.size)
        self._cursor = 0

    def _sample(self, n: int) -> np.ndarray:
        out = np.empty(n, dtype=np.int64)
        filled = 0
        while filled < n:
            if self._cursor == self._perm.size:
                self._new_epoch()
            take = min(n - filled, self._perm.size - self._cursor)
            out[filled : filled + take] = self._perm[self._cursor : self._cursor + take]
            self._cursor += take
            filled += take
        return out

    def _probs(self) -> np.ndarray:
        sizes = np.array([m.size for m in self.members], dtype=np.float64)
        return sizes / sizes.sum()

    def _state(self) -> dict[str, Any]:
        return {"epoch_rng": self._epoch_rng_state, "cursor": self._cursor}

    def _load_state(self, state: Mapping[str, Any]) -> None:
        current = self.rng.bit_generator.state
        self.rng.bit_generator.state = state["epoch_rng"]
        self._new_epoch()
        self._cursor = int(state["cursor"])
        self.rng.bit_generator.state = current


class OrderedCurriculum(CurriculumPolicy):
    """Difficulty-ordered curriculum: one pass from the easiest level to the hardest
    (``reverse=True``: hardest to easiest, Figure 1's bad curriculum).

    Each level gets a share of the ``total_steps`` proportional to its number of problems, so
    the pass ends at the last step (SEC.md §1, the released code's schedule). Batch slot ``i``
    of step ``s`` (of ``n`` slots) sits at position ``u = (s + (i + 0.5) / n) / total_steps``
    and draws uniformly from the level whose cumulative share first exceeds ``u``; a boundary
    may fall inside a batch. Steps past ``total_steps`` stay on the last level.

    Args:
        arm_of_problem, name, arm_fields, total_steps, seed: see
            :class:`~sec.curriculum.base.CurriculumPolicy`; the pass is spread over
            ``total_steps``.
        order_field: the arm field that orders the pass (``level``); arms with the same value
            form one stage. Without that field, arms are ordered as sorted.
        reverse: hard to easy.
    """

    def __init__(
        self,
        arm_of_problem: Sequence[Arm],
        *,
        name: str,
        arm_fields: Sequence[str],
        total_steps: int,
        seed: int,
        order_field: str,
        reverse: bool,
    ) -> None:
        super().__init__(arm_of_problem, name=name, arm_fields=arm_fields, total_steps=total_steps, seed=seed)
        self.reverse = bool(reverse)
        pos = self.arm_fields.index(order_field) if order_field in self.arm_fields else None
        stage_key = [a[pos] if pos is not None else a for a in self.arms]
        values = sorted(set(stage_key), key=lambda v: (str(type(v)), v), reverse=reverse)
        #: arm indices of every stage, in schedule order
        self.stage_arms = [np.array([k for k, v in enumerate(stage_key) if v == s]) for s in values]
        self.stage_problems = [np.concatenate([self.members[k] for k in arms]) for arms in self.stage_arms]
        sizes = np.array([p.size for p in self.stage_problems], dtype=np.float64)
        #: cumulative share of the steps at the end of each stage, shape (S,), last = 1
        self.boundaries = np.cumsum(sizes) / sizes.sum()

    def stage_at(self, position: np.ndarray) -> np.ndarray:
        """Stage index for schedule positions in [0, 1) (clipped to the last stage)."""
        return np.minimum(np.searchsorted(self.boundaries, position, side="right"), len(self.stage_problems) - 1)

    def _sample(self, n: int) -> np.ndarray:
        u = (self.steps + (np.arange(n) + 0.5) / n) / self.total_steps
        stages = self.stage_at(u)
        sizes = np.array([self.stage_problems[s].size for s in stages])
        offsets = self.rng.integers(0, sizes)
        return np.array([self.stage_problems[s][o] for s, o in zip(stages, offsets, strict=True)], dtype=np.int64)

    def _probs(self) -> np.ndarray:
        stage = int(self.stage_at(np.array([(self.steps + 0.5) / self.total_steps]))[0])
        p = np.zeros(self.num_arms)
        for k in self.stage_arms[stage]:
            p[k] = self.members[k].size
        return p / p.sum()
