"""Arm bandits: per-arm values, a selection rule over them, and a within-arm draw.

:class:`ArmBandit` is the frame (Algorithm 1 of SEC.md §1: every batch slot draws an arm from
the selection rule, then one problem inside the arm); :class:`SECBandit` adds the paper's value
learning (an objective per step and a TD(0) update). Other bandits (DUMP, MoPPS) subclass
:class:`ArmBandit` with their own value estimate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sec.curriculum.base import Arm, Batch, CurriculumPolicy
from sec.curriculum.objectives import Objective
from sec.curriculum.selection import Selection
from sec.curriculum.within import Within


class ArmBandit(CurriculumPolicy):
    """A policy that draws each slot's arm from ``selection`` over per-arm values, then a
    problem inside the arm with ``within``.

    State for the selection rule: :attr:`q` (values, float64 (K,)), :attr:`observed`
    (observations per arm, int64 (K,)) and :attr:`updates` (total observations); subclasses
    set them in :meth:`_learn`.

    Args:
        arm_of_problem, name, arm_fields, total_steps, seed: see
            :class:`~sec.curriculum.base.CurriculumPolicy`.
        selection: the rule (``conf/curriculum/selection/``).
        within: the within-arm draw (``conf/curriculum/within/``).
        q_init: initial value of every arm.
        tau: temperature of the softmax rules (Boltzmann, UCB), > 0; the other rules ignore
            it. A bandit-level knob (``curriculum.tau``) because the paper's policy is
            ``softmax(Q / tau)`` and Table S1 tunes it with ``alpha``.

    Raises:
        ValueError: if ``tau <= 0``.
    """

    def __init__(
        self,
        arm_of_problem: Sequence[Arm],
        *,
        name: str,
        arm_fields: Sequence[str],
        total_steps: int,
        seed: int,
        selection: Selection,
        within: Within,
        q_init: float,
        tau: float,
    ) -> None:
        super().__init__(arm_of_problem, name=name, arm_fields=arm_fields, total_steps=total_steps, seed=seed)
        if not tau > 0:
            raise ValueError(f"curriculum.tau must be > 0, got {tau}")
        self.tau = float(tau)
        self.selection = selection
        self.within = within
        within.setup(self.members, self.rng)
        #: arm values Q_t, shape (K,)
        self.q = np.full(self.num_arms, float(q_init), dtype=np.float64)
        #: observations of each arm, shape (K,); total observations so far
        self.observed = np.zeros(self.num_arms, dtype=np.int64)
        self.updates = 0

    def _probs(self) -> np.ndarray:
        return self.selection.probs(self.q, self.observed, self.updates, self.tau)

    def _sample(self, n: int) -> np.ndarray:
        arms = self.selection.draw(self.q, self.observed, self.updates, self.tau, n, self.rng)
        return self.within.draw(arms, self.rng)

    def _values(self) -> np.ndarray:
        return self.q

    def _state(self) -> dict[str, Any]:
        return {
            "q": self.q.tolist(),
            "observed": self.observed.tolist(),
            "updates": self.updates,
            "within": self.within.state_dict(),
        }

    def _load_state(self, state: Mapping[str, Any]) -> None:
        self.q = np.asarray(state["q"], dtype=np.float64)
        self.observed = np.asarray(state["observed"], dtype=np.int64)
        self.updates = int(state["updates"])
        if "within" not in state and self.within.state_dict():
            raise ValueError(
                f"curriculum state has no 'within' part (written before within-category samplers, when every "
                f"draw was uniform); this run draws with {type(self.within).__name__}"
            )
        # a state without 'within' drew uniformly, whose state is empty: it loads into Uniform as is
        self.within.load_state_dict(state.get("within", {}))


class SECBandit(ArmBandit):
    """Self-Evolving Curriculum: a non-stationary bandit with one arm per category (SEC.md §1).

    * values ``Q_0(c) = q_init`` (paper: 0);
    * every batch slot draws an arm from ``selection`` (paper: ``softmax(Q/tau)``), then one
      problem with ``within`` (paper: uniformly; Algorithm 1);
    * after the step, the reward ``r_t(c)`` of every arm present comes from ``objective``
      (paper: the mean token-mean |A| of its rollouts) and
      ``Q(c) <- alpha * r(c) + (1 - alpha) * Q(c)`` (TD(0) / exponential moving average).

    Observations for the selection rule count updates: ``observed[c]`` = updates whose batch
    held arm ``c``, ``updates`` = all updates.

    Args:
        arm_of_problem, name, arm_fields, total_steps, seed, selection, within, q_init, tau:
            see :class:`ArmBandit`.
        objective: the arm reward (``conf/curriculum/objective/``).
        alpha: learning rate of the TD(0) update, in (0, 1] (Table S1: 0.2-0.5).
        update_rule: which arms the TD(0) update touches:

            * ``sampled`` (the paper's text, Sec. 2.3): only arms drawn in the batch; an
              absent arm keeps its value.
            * ``all`` (the released code): every arm, an absent arm with ``r = 0``, so its
              value decays toward 0 by a factor ``1 - alpha``.

            With the paper's batch of 256 every arm is almost always drawn, so the two rules
            coincide there. With small CPU batches they differ: under ``all`` an arm loses
            value merely because the sampler did not draw it, which is evidence about the
            sampler, not about the arm's learning gain; ``sampled`` keeps the estimate an
            average of observed rewards. Hence ``conf/curriculum/sec.yaml`` uses ``sampled``.

    Raises:
        ValueError: for alpha outside (0, 1] or an unknown update rule.
    """

    UPDATE_RULES = ("sampled", "all")

    def __init__(
        self,
        arm_of_problem: Sequence[Arm],
        *,
        name: str,
        arm_fields: Sequence[str],
        total_steps: int,
        seed: int,
        selection: Selection,
        within: Within,
        q_init: float,
        tau: float,
        objective: Objective,
        alpha: float,
        update_rule: str,
    ) -> None:
        super().__init__(
            arm_of_problem,
            name=name,
            arm_fields=arm_fields,
            total_steps=total_steps,
            seed=seed,
            selection=selection,
            within=within,
            q_init=q_init,
            tau=tau,
        )
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"curriculum.alpha must be in (0, 1], got {alpha}")
        if update_rule not in self.UPDATE_RULES:
            raise ValueError(f"curriculum.update_rule must be one of {self.UPDATE_RULES}, got {update_rule!r}")
        self.alpha = float(alpha)
        self.update_rule = update_rule
        self.objective = objective
        objective.setup(self.num_arms)
        #: last curriculum reward per arm (NaN until observed), shape (K,)
        self.last_reward = np.full(self.num_arms, np.nan)

    def _learn(self, batch: Batch) -> dict[Arm, float]:
        present, values = self.objective(batch, self.num_arms)
        r = np.zeros(self.num_arms)
        seen = np.zeros(self.num_arms, dtype=bool)
        r[present], seen[present] = values, True
        touched = seen if self.update_rule == "sampled" else np.ones(self.num_arms, dtype=bool)
        self.q[touched] = self.alpha * r[touched] + (1.0 - self.alpha) * self.q[touched]
        self.last_reward[seen] = r[seen]
        self.observed[seen] += 1
        self.updates += 1
        return {self.arms[k]: float(v) for k, v in zip(present, values, strict=True)}

    def _state(self) -> dict[str, Any]:
        last = [None if np.isnan(v) else float(v) for v in self.last_reward]
        return {**super()._state(), "last_reward": last, "objective": self.objective.state_dict()}

    def _load_state(self, state: Mapping[str, Any]) -> None:
        super()._load_state(state)
        self.last_reward = np.array([np.nan if v is None else v for v in state["last_reward"]], dtype=np.float64)
        self.objective.load_state_dict(state["objective"])
