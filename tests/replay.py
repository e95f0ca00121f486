"""Recorded batches for the replay tests of the peers' curricula.

A step's rollouts are a deterministic function of the drawn problems and a per-step seed: each
problem's level sets its chance of a correct answer (reward 1.0), then of a formatted wrong one
(0.1), else 0.0 (SEC.md §2's puzzle reward), for ``GROUP`` rollouts; the advantage of a rollout
is GRPO's ``(r - mean) / std`` over its group (population std, 0 for a zero-variance group), the
same on every token of the response.
"""

from __future__ import annotations

import numpy as np

GROUP = 4
#: chance of a correct rollout by level (easy to hard), then of a formatted wrong one
P_CORRECT = {1: 0.85, 2: 0.45, 3: 0.08}
P_FORMAT = 0.5

#: 3 levels of 6 / 9 / 15 problems (problem i has level LEVELS[i])
LEVELS = np.array([1] * 6 + [2] * 9 + [3] * 15)
ARMS = [(int(lv),) for lv in LEVELS]


def rollouts(
    problems: np.ndarray, step: int, seed: int = 7, group: int = GROUP, p_correct: dict[int, float] = P_CORRECT
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(problem of every row, signed advantage of every row, task reward of every row), rows
    grouped by problem; the curricula take ``abs`` of the advantage (the token-mean |A|)."""
    problems = np.asarray(problems, dtype=np.int64)
    u = np.random.default_rng([seed, step]).random((problems.size, group, 2))
    p = np.array([p_correct[int(lv)] for lv in LEVELS[problems]])[:, None]
    rewards = np.where(u[..., 0] < p, 1.0, np.where(u[..., 1] < P_FORMAT, 0.1, 0.0))
    std = rewards.std(axis=1, keepdims=True)
    adv = np.where(std > 0, (rewards - rewards.mean(axis=1, keepdims=True)) / np.where(std > 0, std, 1), 0.0)
    return np.repeat(problems, group), adv.ravel(), rewards.ravel()


def rows_by_arm(rows: np.ndarray, values: np.ndarray) -> dict[int, list[float]]:
    """The values of each level's rows, in row order (how the released samplers group a batch)."""
    out: dict[int, list[float]] = {}
    for r, v in zip(rows, values, strict=True):
        out.setdefault(int(LEVELS[r]), []).append(float(v))
    return out
