"""E2H: easy-to-hard probabilistic schedules over difficulty levels ("Curriculum Reinforcement
Learning from Easy to Hard Tasks Improves LLM Reasoning", arXiv 2506.06632).

Source: divelab/E2H-Reasoning at 381e500, ``src/trainer.py``: ``TaskSampler`` (L8-114): at step
``t`` of ``T`` a schedule gives a distribution over the ``K`` levels (``_gaussian_schedule``
L66-85, ``_cosine_schedule`` L52-64), every slot draws its level from it and takes the next
problem of that level's shuffled queue (L90-108; the permutations are drawn at construction,
L32-36, and wrap without reshuffling). Defaults ``mu_exp 0.5``, ``sigma 0.5``, ``min_prob true``
(``config/algorithm/grpo.yaml`` L45-49).

Here a level is a stage of arms with the same value of ``order_field`` (with ``(task, level)``
arms, all tasks' level 1 form the first stage), and the within-stage draw is a part (E2H's
queue: ``within: queue`` with ``reshuffle: false``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sec.curriculum.base import Arm, CurriculumPolicy
from sec.curriculum.within import Within


def e2h_floor(num_levels: int) -> float:
    """E2H's default floor ``2 / (K (K + 1))`` (``min_prob: true``; the smallest probability
    of the linear early / late distributions of the cosine schedule)."""
    return 2.0 / (num_levels * (num_levels + 1))


class Schedule(ABC):
    """Distribution over K levels (easiest first) at step ``t`` of ``T``."""

    @abstractmethod
    def probs(self, t: int, total: int, num_levels: int) -> np.ndarray:
        """float64 (K,), summing to 1."""


class Gaussian(Schedule):
    """``p_i = p_min + (1 - K p_min) q_i``, ``q ∝ exp(-(i - mu)^2 / (2 sigma^2))``,
    ``mu = (t / T)^mu_exp (K - 1)`` (``_gaussian_schedule``).

    Args:
        mu_exp: exponent of the mean's pace, > 0 (< 1: faster at the start).
        sigma: width in levels, > 0.
        p_min: the floor of every level's probability, or None for E2H's ``2 / (K (K + 1))``.

    Raises:
        ValueError: for ``mu_exp <= 0``, ``sigma <= 0``, or ``K p_min > 1`` (when used).
    """

    def __init__(self, mu_exp: float, sigma: float, p_min: float | None) -> None:
        if not (mu_exp > 0 and sigma > 0):
            raise ValueError(f"curriculum.schedule needs mu_exp > 0 and sigma > 0, got {mu_exp}, {sigma}")
        self.mu_exp, self.sigma = float(mu_exp), float(sigma)
        self.p_min = None if p_min is None else float(p_min)

    def probs(self, t: int, total: int, num_levels: int) -> np.ndarray:
        p_min = e2h_floor(num_levels) if self.p_min is None else self.p_min
        if num_levels * p_min > 1:
            raise ValueError(f"curriculum.schedule.p_min={p_min} times {num_levels} levels exceeds 1")
        mu = (t / total) ** self.mu_exp * (num_levels - 1)
        base = np.exp(-((np.arange(num_levels) - mu) ** 2) / (2 * self.sigma**2))
        return p_min + (1 - num_levels * p_min) * (base / base.sum())


class Cosine(Schedule):
    """A cosine blend from the linear "early" distribution ``(K - i) / S`` to the "late" one
    ``(i + 1) / S`` (``S = K (K + 1) / 2``), floored at ``2 / (K (K + 1))`` and renormalised
    (``_cosine_schedule``)."""

    def probs(self, t: int, total: int, num_levels: int) -> np.ndarray:
        i = np.arange(num_levels)
        s = num_levels * (num_levels + 1) / 2.0
        a = 0.5 * (1 + np.cos(np.pi * t / total))
        p = np.maximum(a * ((num_levels - i) / s) + (1 - a) * ((i + 1) / s), e2h_floor(num_levels))
        return p / p.sum()


class E2H(CurriculumPolicy):
    """Every slot draws a level from ``schedule`` at ``t = steps`` (0-based) of ``T =
    total_steps``, then a problem of that level with ``within`` (module doc).

    Args:
        arm_of_problem, name, arm_fields, total_steps, seed: see
            :class:`~sec.curriculum.base.CurriculumPolicy`.
        schedule: :class:`Gaussian` or :class:`Cosine`.
        within: the draw inside a level (E2H: a queue without reshuffling).
        order_field: the numeric arm field that makes the levels (``level``).

    Raises:
        ValueError: one line, when ``order_field`` is no numeric arm field.
    """

    def __init__(
        self,
        arm_of_problem: Sequence[Arm],
        *,
        name: str,
        arm_fields: Sequence[str],
        total_steps: int,
        seed: int,
        schedule: Schedule,
        within: Within,
        order_field: str,
    ) -> None:
        super().__init__(arm_of_problem, name=name, arm_fields=arm_fields, total_steps=total_steps, seed=seed)
        _, self.stage_arms = self.stages(order_field)
        self.schedule = schedule
        self.within = within
        stage_problems = [np.concatenate([self.members[k] for k in arms]) for arms in self.stage_arms]
        within.setup(stage_problems, self.rng)
        # each arm's share of its stage, for the per-arm probabilities
        self._share = np.zeros(self.num_arms)
        for arms, problems in zip(self.stage_arms, stage_problems, strict=True):
            self._share[arms] = [self.members[k].size / problems.size for k in arms]
        self._stage_of_arm = np.zeros(self.num_arms, dtype=np.int64)
        for s, arms in enumerate(self.stage_arms):
            self._stage_of_arm[arms] = s

    def stage_probs(self) -> np.ndarray:
        """The schedule's distribution over levels for the next step, float64 (S,)."""
        return self.schedule.probs(min(self.steps, self.total_steps), self.total_steps, len(self.stage_arms))

    def _probs(self) -> np.ndarray:
        return self.stage_probs()[self._stage_of_arm] * self._share

    def _sample(self, n: int) -> np.ndarray:
        stages = self.rng.choice(len(self.stage_arms), size=n, p=self.stage_probs())
        return self.within.draw(stages, self.rng)

    def _state(self) -> dict[str, Any]:
        return {"within": self.within.state_dict()}

    def _load_state(self, state: Mapping[str, Any]) -> None:
        self.within.load_state_dict(state["within"])
