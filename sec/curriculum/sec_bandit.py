"""The SEC bandit: Boltzmann sampling over arm values learned from |advantage| (SEC.md §1)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sec.curriculum.base import Arm, CurriculumPolicy, arm_name

#: Update rules for arms absent from a batch (SEC.md §1, "Text vs released code").
UPDATE_RULES = ("sampled", "all")


def boltzmann(q: np.ndarray, tau: float) -> np.ndarray:
    """Boltzmann (softmax) policy ``p(c) = exp(Q(c)/tau) / sum_i exp(Q(c_i)/tau)``.

    Source: SEC.md §1 (paper Sec. 2.3, Algorithm 1). Computed with the max subtracted, so it
    is exact for any finite ``q`` and never overflows.

    Args:
        q: arm values, shape (K,).
        tau: temperature, > 0 (lower = greedier).

    Returns:
        probabilities, shape (K,), summing to 1.

    Raises:
        ValueError: if ``tau <= 0``.
    """
    if not tau > 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    z = np.asarray(q, dtype=np.float64) / tau
    z = np.exp(z - z.max())
    return z / z.sum()


class SECBandit(CurriculumPolicy):
    """Self-Evolving Curriculum: a non-stationary bandit with one arm per category.

    * values ``Q_0(c) = q_init`` (paper: 0);
    * every batch slot draws ``c ~ softmax(Q/tau)``, then one problem uniformly within ``c``
      (Algorithm 1);
    * after the step, the reward of arm ``c`` is the mean token-mean ``|A|`` of its rollouts
      (:meth:`CurriculumPolicy.arm_rewards`) and ``Q(c) <- alpha * r(c) + (1 - alpha) * Q(c)``
      (TD(0) / exponential moving average, SEC.md §1).

    Args:
        alpha: learning rate of the TD(0) update, in (0, 1] (Table S1: 0.2-0.5).
        tau: Boltzmann temperature, > 0 (Table S1: 0.2-1.0).
        update: which arms the TD(0) update touches:

            * ``"sampled"`` (default; the paper's text, Sec. 2.3): only arms drawn in the
              batch are updated; an absent arm keeps its value.
            * ``"all"`` (the released code): every arm is updated each step and an absent arm
              gets ``r = 0``, so its value decays toward 0 by a factor ``1 - alpha``.

            With the paper's batch of 256 every arm is almost always drawn, so the two rules
            coincide there. With small CPU batches they differ: under ``"all"`` an arm loses
            value merely because the sampler did not draw it, which is evidence about the
            sampler, not about the arm's learning gain; ``"sampled"`` keeps the estimate an
            average of observed rewards. Hence the default.
        q_init: initial value of every arm.

    Raises:
        ValueError: for alpha outside (0, 1], tau <= 0 or an unknown update rule.
    """

    name = "sec"

    def __init__(
        self,
        arm_of_problem: Sequence[Arm],
        arm_fields: Sequence[str],
        *,
        alpha: float,
        tau: float,
        update: str = "sampled",
        q_init: float = 0.0,
        seed: int = 0,
    ) -> None:
        super().__init__(arm_of_problem, arm_fields, seed)
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"curriculum.alpha must be in (0, 1], got {alpha}")
        if not tau > 0:
            raise ValueError(f"curriculum.tau must be > 0, got {tau}")
        if update not in UPDATE_RULES:
            raise ValueError(f"curriculum.update must be one of {UPDATE_RULES}, got {update!r}")
        self.alpha = float(alpha)
        self.tau = float(tau)
        self.update_rule = update
        #: arm values Q_t, shape (K,)
        self.q = np.full(self.num_arms, float(q_init), dtype=np.float64)
        #: last curriculum reward per arm (NaN until observed), shape (K,)
        self.last_reward = np.full(self.num_arms, np.nan)

    def _probs(self) -> np.ndarray:
        return boltzmann(self.q, self.tau)

    def _sample(self, n: int) -> np.ndarray:
        arms = self.rng.choice(self.num_arms, size=n, p=self._probs())
        return self._uniform_within(arms)

    def _update(self, rewards: Mapping[Arm, float]) -> None:
        r = np.zeros(self.num_arms)
        seen = np.zeros(self.num_arms, dtype=bool)
        for arm, value in rewards.items():
            k = self.arms.index(arm)
            r[k], seen[k] = value, True
        touched = seen if self.update_rule == "sampled" else np.ones(self.num_arms, dtype=bool)
        self.q[touched] = self.alpha * r[touched] + (1.0 - self.alpha) * self.q[touched]
        self.last_reward[seen] = r[seen]

    def stats(self) -> dict[str, float]:
        out = super().stats()
        for k, arm in enumerate(self.arms):
            out[f"curriculum/{arm_name(arm)}/q"] = float(self.q[k])
        return out

    def _state(self) -> dict[str, Any]:
        return {"q": self.q.tolist(), "last_reward": [None if np.isnan(x) else x for x in self.last_reward]}

    def _load_state(self, state: Mapping[str, Any]) -> None:
        self.q = np.asarray(state["q"], dtype=np.float64)
        self.last_reward = np.array([np.nan if x is None else x for x in state["last_reward"]], dtype=np.float64)
