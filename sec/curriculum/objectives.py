"""Objectives: what an arm's curriculum reward ``r_t(c)`` is, from one step's rollouts.

Each objective is one small class built from ``conf/curriculum/objective/<name>.yaml``
(nested ``_target_``). A bandit calls it once per step with the validated
:class:`~sec.curriculum.base.Batch` and gets back the arms present in the batch and their
rewards; objectives that remember something (progress) keep it in their ``state_dict``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

import numpy as np

from sec.curriculum.base import Batch, mean_per_arm


class Objective(ABC):
    """Per-arm reward of one step (see module doc)."""

    def setup(self, num_arms: int) -> None:
        """Bind to the number of arms K (called once by the policy)."""

    @abstractmethod
    def __call__(self, batch: Batch, num_arms: int) -> tuple[np.ndarray, np.ndarray]:
        """(present arm indices ascending, int64 (P,); their rewards, float64 (P,))."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Nothing to restore by default."""


class MeanAbsAdvantage(Objective):
    """The paper's reward: ``r_t(c) = 1/|B_c| sum_{j in B_c} (1/T_j) sum_t |A_{t,j}|``, the mean
    token-mean |advantage| of the arm's rollouts (SEC.md §1). With the same number of rollouts
    per problem this is the mean over the arm's problems of the mean over their rollouts."""

    def __call__(self, batch: Batch, num_arms: int) -> tuple[np.ndarray, np.ndarray]:
        return mean_per_arm(batch.arms, batch.abs_adv, num_arms)


class SuccessShare(Objective):
    """The share ``p`` of the arm's rollouts whose task reward is ``>= threshold`` (a success
    rate in [0, 1]; the estimate the learnability rule reads).

    Args:
        threshold: the task reward that counts as a success (1.0: a correct answer, not the
            0.1 format reward; SEC.md §2).
    """

    def __init__(self, threshold: float) -> None:
        self.threshold = float(threshold)

    def success(self, batch: Batch, who: str) -> np.ndarray:
        """1.0 / 0.0 per row."""
        return (batch.need_rewards(who) >= self.threshold).astype(np.float64)

    def __call__(self, batch: Batch, num_arms: int) -> tuple[np.ndarray, np.ndarray]:
        return mean_per_arm(batch.arms, self.success(batch, "objective=success_share"), num_arms)


class SuccessRate(SuccessShare):
    """``r = 2 sqrt(p (1 - p))`` with ``p`` the arm's success share (:class:`SuccessShare`): the
    expected |A| of GRPO with binary rewards (SEC.md §1), computed from rewards instead of
    advantages.

    Args:
        threshold: the task reward that counts as a success.
    """

    def __call__(self, batch: Batch, num_arms: int) -> tuple[np.ndarray, np.ndarray]:
        present, p = mean_per_arm(batch.arms, self.success(batch, "objective=success_rate"), num_arms)
        return present, 2.0 * np.sqrt(p * (1.0 - p))


class Progress(Objective):
    """Learning progress: the change of the arm's mean task reward ``R(c)`` since the arm's
    previous update (the released SEC code's ``progress``, ``priority.py`` L159-176 in
    Vincent-La/cofa ``sec/``).

    Args:
        signed: ``R - R_prev`` (True, the released code) or ``|R - R_prev|`` (False: a drop in
            reward, e.g. forgetting, counts as learning signal too).
        baseline: ``R_prev`` before an arm's first update: None = the first update scores 0;
            0.0 = the released code (its first update scores ``R``).
    """

    def __init__(self, signed: bool, baseline: float | None) -> None:
        self.signed = bool(signed)
        self.baseline = None if baseline is None else float(baseline)

    def setup(self, num_arms: int) -> None:
        #: previous mean task reward per arm (NaN = not seen yet)
        self.prev = np.full(num_arms, np.nan if self.baseline is None else self.baseline)

    def __call__(self, batch: Batch, num_arms: int) -> tuple[np.ndarray, np.ndarray]:
        present, mean = mean_per_arm(batch.arms, batch.need_rewards("objective=progress"), num_arms)
        prev = self.prev[present]
        diff = mean - prev if self.signed else np.abs(mean - prev)
        self.prev[present] = mean
        return present, np.where(np.isnan(prev), 0.0, diff)

    def state_dict(self) -> dict[str, Any]:
        return {"prev": [None if np.isnan(v) else float(v) for v in self.prev]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.prev = np.array([np.nan if v is None else v for v in state["prev"]], dtype=np.float64)
