"""GRESO: skip problems whose recent groups had zero reward variance, before their rollouts
(Zheng et al., "Act Only When It Pays: Efficient Reinforcement Learning for LLM Reasoning via
Selective Rollouts", arXiv 2506.02177).

Source: Infini-AI-Lab/GRESO at b277843: ``verl/trainer/ttis/presampling_selector.py``
(``DataProfiler``: each problem's trace of group mean rewards; ``easy_probabilistic_skip``
L102-122 and ``hard_probabilistic_skip`` L124-147: ``k`` = the trailing run of visits with mean
``>= 0.98`` (all correct) or ``<= 0.11`` (none correct), skip with probability ``1 - max(p^k,
0.01)``) and ``verl/trainer/ppo/ray_trainer.py`` (targets L298-299: easy ``0.25 / 3``, hard
``0.25 * 2 / 3`` of the zero-variance share 0.25; adaptation L1201-1219: after each step, ``p``
moves by 0.01 down when the step's easy / hard share is at or above its target, else up,
within [0.05, 0.95]; ``p_easy = p_hard = 0.5`` in ``train-scripts/*_greso.sh``).

A wrapper around ANY curriculum: the inner policy proposes each slot's problem; a proposal is
skipped with its probability and the inner policy proposes again for the skipped slots, so
skipped problems cost no rollout (GRESO over-samples a larger candidate batch instead). After
``max_rounds`` proposals the remaining slots keep the inner policy's draws unfiltered.
Differences from the release:

* the per-step hard share counts groups with mean reward ``<= hard_below`` (the skip rule's own
  test); the release counts only groups whose rewards are all exactly 0.1 (its format-only
  reward), so tasks without a format reward would never count as hard;
* ``p`` adapts from the first step (the release waits for the second data epoch: ``epoch > 0``);
* one uniform per proposal decides its skip (the release draws ``torch.rand`` in each test).

Zero-variance information comes from the ``reward_of_rows`` the feed already passes to
``update``: a problem's group is its rows of the step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from sec.curriculum.base import Arm, Batch, CurriculumPolicy

EASY, HARD = 1, 2


class GRESO(CurriculumPolicy):
    """Probabilistic pre-rollout skipping of zero-variance problems around ``inner`` (module doc).

    Args:
        arm_of_problem, name, arm_fields, total_steps, seed: see
            :class:`~sec.curriculum.base.CurriculumPolicy`; ``arm_fields`` must be the inner
            policy's.
        inner: the wrapped curriculum, a factory ``inner(arm_of_problem, total_steps=, seed=)``
            (a nested config with ``_partial_: true``); it shares this policy's RNG stream.
        p_easy, p_hard: initial keep bases (GRESO 0.5, 0.5).
        target_easy, target_hard: per-step shares of all-correct / all-wrong groups the
            adaptation aims at (GRESO 0.25 / 3, 0.25 * 2 / 3).
        step: adaptation step of ``p`` (GRESO 0.01).
        p_bounds: [low, high] clip of ``p`` (GRESO [0.05, 0.95]).
        keep_floor: the smallest keep probability (GRESO 0.01).
        easy_above, hard_below: a group is easy when its mean reward is ``>= easy_above``, hard
            when ``<= hard_below`` (GRESO 0.98, 0.11).
        max_rounds: proposals per slot before a slot keeps an unfiltered draw, >= 1.

    Raises:
        ValueError: for arm fields other than the inner policy's or parameters out of range.
    """

    def __init__(
        self,
        arm_of_problem: Sequence[Arm],
        *,
        name: str,
        arm_fields: Sequence[str],
        total_steps: int,
        seed: int,
        inner: Callable[..., CurriculumPolicy],
        p_easy: float,
        p_hard: float,
        target_easy: float,
        target_hard: float,
        step: float,
        p_bounds: Sequence[float],
        keep_floor: float,
        easy_above: float,
        hard_below: float,
        max_rounds: int,
    ) -> None:
        super().__init__(arm_of_problem, name=name, arm_fields=arm_fields, total_steps=total_steps, seed=seed)
        self.inner = inner(arm_of_problem, total_steps=total_steps, seed=seed)
        if self.inner.arm_fields != self.arm_fields:
            raise ValueError(f"curriculum.arm_fields {list(self.arm_fields)} differ from the inner curriculum's")
        lo, hi = (float(x) for x in p_bounds)
        if not (0 < lo <= hi <= 1 and int(max_rounds) >= 1 and 0 <= keep_floor <= 1):
            raise ValueError("curriculum: GRESO needs 0 < p_bounds[0] <= p_bounds[1] <= 1, keep_floor in [0, 1]")
        self.rng = self.inner.rng  # one stream: proposals and skips, saved once
        self.p_easy, self.p_hard = float(p_easy), float(p_hard)
        self.target_easy, self.target_hard, self.step = float(target_easy), float(target_hard), float(step)
        self.p_bounds, self.keep_floor, self.max_rounds = (lo, hi), float(keep_floor), int(max_rounds)
        self.easy_above, self.hard_below = float(easy_above), float(hard_below)
        #: per problem: kind of its trailing zero-variance run (0 none, 1 easy, 2 hard) and length
        self.kind = np.zeros(self.arm_index.size, dtype=np.int8)
        self.run = np.zeros(self.arm_index.size, dtype=np.int64)
        self.skipped = 0  # proposals skipped for the last batch

    def skip_probability(self, problems: np.ndarray) -> np.ndarray:
        """``1 - max(p^k, keep_floor)`` per problem (0 without a zero-variance run), float64."""
        base = np.where(self.kind[problems] == EASY, self.p_easy, self.p_hard)
        return 1.0 - np.maximum(base ** self.run[problems], self.keep_floor)

    def _sample(self, n: int) -> np.ndarray:
        out, filled, self.skipped = np.empty(n, dtype=np.int64), 0, 0
        for _ in range(self.max_rounds):
            proposed = np.asarray(self.inner._sample(n - filled), dtype=np.int64)
            kept = proposed[self.rng.random(proposed.size) >= self.skip_probability(proposed)]
            out[filled : filled + kept.size] = kept
            filled += kept.size
            self.skipped += proposed.size - kept.size
            if filled == n:
                return out
        out[filled:] = self.inner._sample(n - filled)
        return out

    def _commit(self, idx: np.ndarray) -> None:
        super()._commit(idx)
        self.inner._commit(idx)

    def _learn(self, batch: Batch) -> dict[Arm, float]:
        rewards = batch.need_rewards("curriculum GRESO")
        problems, group = np.unique(batch.problems, return_inverse=True)
        mean = np.bincount(group, weights=rewards) / np.bincount(group)
        easy, hard = mean >= self.easy_above, mean <= self.hard_below
        kind = np.where(easy, EASY, np.where(hard, HARD, 0)).astype(np.int8)
        self.run[problems] = np.where(kind == 0, 0, np.where(self.kind[problems] == kind, self.run[problems] + 1, 1))
        self.kind[problems] = kind
        if problems.size:
            self.p_easy = self._adapt(self.p_easy, float(easy.mean()) >= self.target_easy)
            self.p_hard = self._adapt(self.p_hard, float(hard.mean()) >= self.target_hard)
        return self.inner._learn(batch)

    def _adapt(self, p: float, at_or_above_target: bool) -> float:
        """Filter more (lower ``p``) when the share reached its target, else less."""
        lo, hi = self.p_bounds
        return max(p - self.step, lo) if at_or_above_target else min(p + self.step, hi)

    def _probs(self) -> np.ndarray:
        """The inner policy's distribution (before skipping)."""
        return self.inner._probs()

    def _values(self) -> np.ndarray | None:
        return self.inner._values()

    def _extra_stats(self) -> dict[str, float]:
        return {
            **self.inner._extra_stats(),
            "curriculum/greso_p_easy": self.p_easy,
            "curriculum/greso_p_hard": self.p_hard,
            "curriculum/greso_skipped": self.skipped,
        }

    def _state(self) -> dict[str, Any]:
        runs = np.flatnonzero(self.run)
        return {
            "inner": self.inner.state_dict(),
            "p": [self.p_easy, self.p_hard],
            "runs": [[int(i), int(self.kind[i]), int(self.run[i])] for i in runs],
            "skipped": self.skipped,
        }

    def _load_state(self, state: Mapping[str, Any]) -> None:
        self.inner.load_state_dict(state["inner"])
        self.p_easy, self.p_hard = (float(x) for x in state["p"])
        self.kind[:], self.run[:] = 0, 0
        for i, kind, run in state["runs"]:
            self.kind[i], self.run[i] = kind, run
        self.skipped = int(state["skipped"])
