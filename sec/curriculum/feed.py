"""The glue between a curriculum policy and an RL engine (TRL or verl), engine-free.

:func:`token_mean_abs` reduces an engine's advantages to the per-rollout |A| the policies read
(torch tensors are duck-typed: reduced where they live, without importing torch here); a
:class:`CurriculumFeed` draws the problems of a step from the policy, feeds the step's |A| and
task rewards back and keeps the step's curriculum metrics, among them what the curriculum cost
(``curriculum/overhead_ms``: the wall time of the draw and of the update, measured here, so the
same for every engine).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sec.curriculum.base import CurriculumPolicy, arm_name


def token_mean_abs(advantages: Any, mask: Any) -> np.ndarray:
    """Token-mean absolute advantage of every rollout, ``(1/T_j) sum_t |A_{t,j}|`` (SEC.md §1).

    Args:
        advantages: shape (R,) (one advantage per sequence, as GRPO/RLOO give) or (R, T)
            (per token, as PPO/GAE gives); torch tensor or array.
        mask: response-token mask, shape (R, T), 1 for generated tokens.

    Returns:
        float64 array of shape (R,). A rollout with no response token gets 0 (it carries no
        gradient).

    Raises:
        ValueError: on shape mismatch.
    """
    if hasattr(advantages, "detach") and hasattr(mask, "detach"):  # torch: reduce where the tensors live
        m = mask.detach().to(advantages.dtype if advantages.is_floating_point() else None)
        a = advantages.detach()
        if m.dim() != 2 or a.shape not in (m.shape[:1], m.shape):
            raise ValueError(f"advantages of shape {tuple(a.shape)} do not match the (R, T) mask {tuple(m.shape)}")
        tokens = m.sum(dim=1)
        num = a.abs() * (tokens > 0) if a.dim() == 1 else (a.abs() * m).sum(dim=1) / tokens.clamp(min=1)
        return num.float().cpu().numpy().astype(np.float64)
    a = np.asarray(advantages)
    m = np.asarray(mask)
    if m.ndim != 2 or a.shape not in (m.shape[:1], m.shape):
        raise ValueError(f"advantages of shape {a.shape} do not match the (R, T) mask {m.shape}")
    tokens = m.sum(axis=1, dtype=np.float64)
    if a.ndim == 1:
        # the token mean of a per-sequence advantage is the advantage itself
        return np.where(tokens > 0, np.abs(a.astype(np.float64)), 0.0)
    return np.einsum("ij,ij->i", np.abs(a), m, dtype=np.float64) / np.maximum(tokens, 1.0)


class CurriculumFeed:
    """Draws each step's problems from ``policy`` and updates it from the step's advantages.

    Args:
        policy: the curriculum.
        problems: the training problem records, indexed like the policy's problems.
        difficulty_field: record field averaged into ``curriculum/sampled_level_mean``.

    A step's metrics include ``curriculum/overhead_ms``: the wall time (``time.perf_counter``, in
    milliseconds) of :meth:`draw` (the policy's ``probs`` and ``sample`` and the draw's metrics)
    plus that of :meth:`feed` (``update`` and the metrics after it): everything the curriculum
    adds to an RL step; the engine's rollouts and optimizer step are not in it.
    """

    def __init__(
        self, policy: CurriculumPolicy, problems: Sequence[Mapping[str, Any]], difficulty_field: str = "level"
    ) -> None:
        self.policy = policy
        self.problems = problems
        self.difficulty_field = difficulty_field
        self._drawn: np.ndarray | None = None
        self._stats: dict[str, float] = {}
        self._task_rewards: list[float] | None = None
        self._overhead_ms = 0.0
        self._step_drawn: list[np.ndarray] = []

    def record_rewards(self, rewards: Sequence[float]) -> None:
        """Keep the task rewards of the current step's rollouts (in row order) for objectives
        that read them; the engine's reward function calls this."""
        self._task_rewards = [float(r) for r in rewards]

    def draw(self, n: int) -> np.ndarray:
        """The ``n`` problem indices of the next rollout batch (one per group).

        A step may draw several batches (dynamic sampling, sec/dynamic_sampling.py): the step's
        metrics keep the probabilities of its first draw and average the sampled level over all.
        """
        t0 = time.perf_counter()
        first = not self._step_drawn
        probs = self.policy.probs() if first else None
        idx = self.policy.sample(n)
        self._drawn = idx
        self._step_drawn.append(idx)
        stats = dict(self._stats) if not first else {}
        if probs is not None:
            stats.update({f"curriculum/{arm_name(a)}/prob": p for a, p in probs.items()})
        level = self._difficulty(np.concatenate(self._step_drawn))
        if level is not None:
            stats["curriculum/sampled_level_mean"] = level
        self._stats = stats
        self._overhead_ms += (time.perf_counter() - t0) * 1e3
        return idx

    def _difficulty(self, idx: np.ndarray) -> float | None:
        """Mean difficulty of the drawn problems: from the arms when the difficulty is an arm
        field (vectorised), else from the records."""
        value = self.policy.difficulty(idx, self.difficulty_field)
        if value is not None:
            return value
        levels = [self.problems[i].get(self.difficulty_field) for i in idx]
        numeric = [float(v) for v in levels if isinstance(v, (int, float, np.integer, np.floating))]
        return float(np.mean(numeric)) if numeric else None

    def feed(
        self,
        problem_of_rows: Sequence[int] | np.ndarray,
        abs_adv_of_rows: np.ndarray,
        reward_of_rows: Sequence[float] | np.ndarray | None = None,
    ) -> dict[str, float]:
        """Update the policy from one step's rollouts (see :meth:`CurriculumPolicy.update`)
        and return this step's curriculum metrics: the probabilities the batch was drawn
        with, the values and counts after the update, each arm's reward and
        ``curriculum/overhead_ms`` (the draw's and this update's wall time, class doc).

        ``reward_of_rows`` defaults to the rewards given to :meth:`record_rewards` this step.

        Raises:
            ValueError: if the recorded rewards are not one per row.
        """
        t0 = time.perf_counter()
        if reward_of_rows is None and self._task_rewards is not None:
            reward_of_rows, self._task_rewards = self._task_rewards, None
            if len(reward_of_rows) != len(abs_adv_of_rows):
                raise ValueError(f"{len(reward_of_rows)} recorded rewards for {len(abs_adv_of_rows)} rollouts")
        rewards = self.policy.update(problem_of_rows, abs_adv_of_rows, reward_of_rows)
        after = self.policy.stats()
        stats = dict(self._stats)
        stats.update({k: v for k, v in after.items() if not k.endswith("/prob")})
        for arm, r in rewards.items():
            stats[f"curriculum/{arm_name(arm)}/reward"] = r
        stats["curriculum/abs_adv_mean"] = float(np.mean(abs_adv_of_rows)) if len(abs_adv_of_rows) else 0.0
        self._overhead_ms += (time.perf_counter() - t0) * 1e3
        stats["curriculum/overhead_ms"] = self._overhead_ms
        self._stats = stats
        return stats

    def pop_stats(self, end_step: bool = True) -> dict[str, float]:
        """The metrics gathered since the last call, once (an empty dict afterwards).

        ``end_step=False`` (verl logs a step's draw before its update) keeps the step open: its
        draws and its overhead so far count on toward the metrics of the update.
        """
        out, self._stats = self._stats, {}
        if end_step:
            self._overhead_ms, self._step_drawn = 0.0, []
        return out
