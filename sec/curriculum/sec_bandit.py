"""The SEC bandit: Boltzmann sampling over arm values learned from |advantage| (SEC.md §1),
plus the selection rules and objectives the paper names as future work or its code offers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sec.curriculum.base import Arm, CurriculumPolicy, arm_name

#: Update rules for arms absent from a batch (SEC.md §1, "Text vs released code").
UPDATE_RULES = ("sampled", "all")
#: How arms are drawn from their values: the paper's Boltzmann policy, or a variant the paper
#: names as future work (uncertainty-aware selection) / the released code offers (greedy).
SELECTIONS = ("boltzmann", "ucb", "thompson", "epsilon_greedy")
#: What an arm's reward r_t(c) is: the paper's mean |advantage|, the released code's learning
#: progress, or the success-rate proxy 2 sqrt(p(1-p)) (= E|A| of GRPO on binary rewards).
OBJECTIVES = ("abs_adv", "progress", "success_rate")


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
        selection: how a batch slot picks its arm from the values (beyond the paper):

            * ``"boltzmann"`` (paper): ``p = softmax(Q / tau)``.
            * ``"ucb"``: UCB1-style optimism inside the same softmax,
              ``p = softmax((Q + ucb_c * sqrt(ln(t + 1) / (n(c) + 1))) / tau)`` with ``t`` the
              number of updates so far and ``n(c)`` those that observed arm ``c``; rarely
              observed arms get a bonus that shrinks as evidence accumulates (Auer et al.
              2002); ``tau -> 0`` gives UCB1's argmax.
            * ``"thompson"``: each slot draws ``theta(c) ~ N(Q(c), thompson_sigma^2 / (n(c) +
              1))`` for every arm and takes the argmax: a Gaussian posterior over each arm's
              reward whose width shrinks with the arm's observations (Thompson 1933).
            * ``"epsilon_greedy"`` (released code's ``greedy``): uniform arm with probability
              ``epsilon``, else the arm of largest Q (ties split evenly).
        objective: the arm reward ``r_t(c)``:

            * ``"abs_adv"`` (paper): mean token-mean |A| of the arm's rollouts.
            * ``"progress"`` (released code): ``|R(c) - R_prev(c)|``, the change of the mean
              task reward of the arm's rollouts since the arm's previous update (0 at the
              arm's first update).
            * ``"success_rate"``: ``2 sqrt(p (1 - p))`` with ``p`` the share of the arm's
              rollouts whose task reward is ``>= success_threshold``; it is E|A| of GRPO with
              binary rewards (SEC.md §1), computed from rewards instead of advantages.
        ucb_c, thompson_sigma, epsilon, success_threshold: the variants' parameters.

    Raises:
        ValueError: for alpha outside (0, 1], tau <= 0, an unknown update rule, selection or
            objective, or variant parameters out of range.
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
        selection: str = "boltzmann",
        objective: str = "abs_adv",
        ucb_c: float = 1.0,
        thompson_sigma: float = 0.5,
        epsilon: float = 0.1,
        success_threshold: float = 1.0,
        seed: int = 0,
    ) -> None:
        super().__init__(arm_of_problem, arm_fields, seed)
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"curriculum.alpha must be in (0, 1], got {alpha}")
        if not tau > 0:
            raise ValueError(f"curriculum.tau must be > 0, got {tau}")
        if update not in UPDATE_RULES:
            raise ValueError(f"curriculum.update must be one of {UPDATE_RULES}, got {update!r}")
        if selection not in SELECTIONS:
            raise ValueError(f"curriculum.selection must be one of {SELECTIONS}, got {selection!r}")
        if objective not in OBJECTIVES:
            raise ValueError(f"curriculum.objective must be one of {OBJECTIVES}, got {objective!r}")
        if ucb_c < 0 or thompson_sigma <= 0 or not 0.0 <= epsilon <= 1.0:
            raise ValueError("curriculum: need ucb_c >= 0, thompson_sigma > 0 and epsilon in [0, 1]")
        self.selection = selection
        self.objective = objective
        self.ucb_c = float(ucb_c)
        self.thompson_sigma = float(thompson_sigma)
        self.epsilon = float(epsilon)
        self.success_threshold = float(success_threshold)
        #: updates that observed each arm, shape (K,); total updates so far
        self.observed = np.zeros(self.num_arms, dtype=np.int64)
        self.updates = 0
        #: previous mean task reward per arm (progress objective; NaN = not seen yet)
        self.prev_task_reward = np.full(self.num_arms, np.nan)
        self.alpha = float(alpha)
        self.tau = float(tau)
        self.update_rule = update
        #: arm values Q_t, shape (K,)
        self.q = np.full(self.num_arms, float(q_init), dtype=np.float64)
        #: last curriculum reward per arm (NaN until observed), shape (K,)
        self.last_reward = np.full(self.num_arms, np.nan)

    def ucb_bonus(self) -> np.ndarray:
        """UCB1-style bonus ``ucb_c * sqrt(ln(t + 1) / (n(c) + 1))`` per arm, shape (K,)."""
        return self.ucb_c * np.sqrt(np.log(self.updates + 1.0) / (self.observed + 1.0))

    def posterior_std(self) -> np.ndarray:
        """Thompson posterior std ``thompson_sigma / sqrt(n(c) + 1)`` per arm, shape (K,)."""
        return self.thompson_sigma / np.sqrt(self.observed + 1.0)

    def _probs(self) -> np.ndarray:
        if self.selection == "boltzmann":
            return boltzmann(self.q, self.tau)
        if self.selection == "ucb":
            return boltzmann(self.q + self.ucb_bonus(), self.tau)
        if self.selection == "epsilon_greedy":
            best = np.isclose(self.q, self.q.max())
            return self.epsilon / self.num_arms + (1.0 - self.epsilon) * best / best.sum()
        # thompson: the probability that each arm's posterior draw is the largest, estimated
        # with a fixed private generator so that asking never changes the policy's own RNG
        draws = np.random.default_rng(12345).standard_normal((4096, self.num_arms))
        winners = np.argmax(self.q + draws * self.posterior_std(), axis=1)
        return np.bincount(winners, minlength=self.num_arms) / winners.size

    def _sample(self, n: int) -> np.ndarray:
        if self.selection == "thompson":
            theta = self.q + self.rng.standard_normal((n, self.num_arms)) * self.posterior_std()
            arms = np.argmax(theta, axis=1)
        else:
            arms = self.rng.choice(self.num_arms, size=n, p=self._probs())
        return self._uniform_within(arms)

    def _objective(
        self,
        problem_of_rows: Sequence[int] | np.ndarray,
        abs_adv_of_rows: Sequence[float] | np.ndarray,
        reward_of_rows: Sequence[float] | np.ndarray | None,
    ) -> dict[Arm, float]:
        if self.objective == "abs_adv":
            return self.arm_rewards(problem_of_rows, abs_adv_of_rows)
        if reward_of_rows is None:
            raise ValueError(f"curriculum.objective={self.objective} needs the task reward of every rollout")
        if self.objective == "success_rate":
            success = (np.asarray(reward_of_rows, dtype=np.float64) >= self.success_threshold).astype(np.float64)
            p = self.arm_rewards(problem_of_rows, success)
            return {arm: 2.0 * float(np.sqrt(v * (1.0 - v))) for arm, v in p.items()}
        mean_reward = self.arm_rewards(problem_of_rows, reward_of_rows)  # progress
        out = {}
        for arm, value in mean_reward.items():
            k = self.arms.index(arm)
            prev = self.prev_task_reward[k]
            out[arm] = 0.0 if np.isnan(prev) else abs(value - prev)
            self.prev_task_reward[k] = value
        return out

    def _update(self, rewards: Mapping[Arm, float]) -> None:
        r = np.zeros(self.num_arms)
        seen = np.zeros(self.num_arms, dtype=bool)
        for arm, value in rewards.items():
            k = self.arms.index(arm)
            r[k], seen[k] = value, True
        touched = seen if self.update_rule == "sampled" else np.ones(self.num_arms, dtype=bool)
        self.q[touched] = self.alpha * r[touched] + (1.0 - self.alpha) * self.q[touched]
        self.last_reward[seen] = r[seen]
        self.observed[seen] += 1
        self.updates += 1

    def stats(self) -> dict[str, float]:
        out = super().stats()
        for k, arm in enumerate(self.arms):
            out[f"curriculum/{arm_name(arm)}/q"] = float(self.q[k])
        return out

    def _state(self) -> dict[str, Any]:
        return {
            "q": self.q.tolist(),
            "last_reward": _nan_to_none(self.last_reward),
            "observed": self.observed.tolist(),
            "updates": self.updates,
            "prev_task_reward": _nan_to_none(self.prev_task_reward),
        }

    def _load_state(self, state: Mapping[str, Any]) -> None:
        self.q = np.asarray(state["q"], dtype=np.float64)
        self.last_reward = _none_to_nan(state["last_reward"])
        self.observed = np.asarray(state["observed"], dtype=np.int64)
        self.updates = int(state["updates"])
        self.prev_task_reward = _none_to_nan(state["prev_task_reward"])


def _nan_to_none(x: np.ndarray) -> list[float | None]:
    return [None if np.isnan(v) else float(v) for v in x]


def _none_to_nan(x: Sequence[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in x], dtype=np.float64)
