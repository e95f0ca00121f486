"""AdaRFT: a target difficulty that follows the batch reward; each step trains on the problems
nearest the target (Shi et al., "Efficient Reinforcement Finetuning via Adaptive Curriculum
Learning", arXiv 2504.05520).

Source: the paper's update ``T' = clip(T + eta tanh(alpha (R_avg - beta)), d_min, d_max)`` and
the released code, uscnlp-lime/verl at bf2dd7e: ``verl/trainer/ppo/custom_sampler.py``
(``CurriculumSampler._select_closest_to_target``, L24-39: the ``B`` problems of smallest
``|d_i - T|``), ``verl/trainer/ppo/ray_trainer.py`` L956-967 (``R_avg`` = mean sequence
reward of the step's rollouts; ``T_0 = 0``, L432) and ``verl/trainer/config/ppo_trainer.yaml``
L18-24 (``beta 0.5, alpha 2, eta 50, d_min 0, d_max 100``).

Difficulty here: a problem's level on the paper's 0-100 scale, ``d = 100 (level - min) / (max -
min)`` over the training levels (the paper scores each problem's difficulty 0-100 from pass
rates; our tasks give levels). Differences from the release: problems tie at a level, so ties
are broken uniformly at random each step (``np.argsort`` would pick the same problems of a level
every step), and no problem appears twice in a batch unless the nearest levels hold fewer than
``B`` problems in all (then the batch is filled in turn from every level by distance).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sec.curriculum.base import Arm, Batch, CurriculumPolicy, mean_per_arm


class AdaRFT(CurriculumPolicy):
    """Target difficulty ``T`` (0-100) moved by the batch reward; problems nearest ``T``.

    Args:
        arm_of_problem, name, arm_fields, total_steps, seed: see
            :class:`~sec.curriculum.base.CurriculumPolicy`.
        order_field: the numeric arm field that gives the difficulty (``level``).
        target_init: ``T_0`` on the 0-100 scale (AdaRFT 0: the easiest level).
        eta: step size on the 0-100 scale (AdaRFT 50).
        alpha: sensitivity of the tanh (AdaRFT 2).
        beta: the target batch reward (AdaRFT 0.5).

    Raises:
        ValueError: one line, when ``order_field`` is no numeric arm field, or
            ``target_init`` is outside [0, 100].
    """

    SCALE = 100.0  # d_max of the paper's difficulty scale (d_min = 0)

    def __init__(
        self,
        arm_of_problem: Sequence[Arm],
        *,
        name: str,
        arm_fields: Sequence[str],
        total_steps: int,
        seed: int,
        order_field: str,
        target_init: float,
        eta: float,
        alpha: float,
        beta: float,
    ) -> None:
        super().__init__(arm_of_problem, name=name, arm_fields=arm_fields, total_steps=total_steps, seed=seed)
        values, self.stage_arms = self.stages(order_field)
        if not 0.0 <= target_init <= self.SCALE:
            raise ValueError(f"curriculum.target_init must be in [0, {self.SCALE:g}], got {target_init}")
        span = values[-1] - values[0]
        #: difficulty of every stage on the 0-100 scale, float64 (S,)
        self.difficulty_of_stage = self.SCALE * (values - values[0]) / span if span > 0 else np.zeros(values.size)
        self.stage_problems = [np.concatenate([self.members[k] for k in arms]) for arms in self.stage_arms]
        self.target = float(target_init)
        self.eta, self.alpha, self.beta = float(eta), float(alpha), float(beta)

    def nearest_stages(self) -> list[np.ndarray]:
        """Stage indices grouped by distance to the target, nearest first (ties grouped)."""
        dist = np.abs(self.difficulty_of_stage - self.target)
        return [np.flatnonzero(dist == d) for d in np.unique(dist)]

    def _probs(self) -> np.ndarray:
        p = np.zeros(self.num_arms)
        for s in self.nearest_stages()[0]:
            p[self.stage_arms[s]] = [self.members[k].size for k in self.stage_arms[s]]
        return p / p.sum()

    def _sample(self, n: int) -> np.ndarray:
        out, need = [], n
        while need > 0:  # more than the whole set: start over (the release repeats problems too)
            for group in self.nearest_stages():
                pool = np.concatenate([self.stage_problems[s] for s in group])
                take = min(need, pool.size)
                out.append(self.rng.choice(pool, size=take, replace=False))
                need -= take
                if need == 0:
                    break
        return np.concatenate(out)

    def _learn(self, batch: Batch) -> dict[Arm, float]:
        rewards = batch.need_rewards("curriculum=adarft")
        reward = float(np.mean(rewards)) if rewards.size else self.beta  # no rollouts: no move
        self.target = float(np.clip(self.target + self.eta * np.tanh(self.alpha * (reward - self.beta)), 0, self.SCALE))
        present, means = mean_per_arm(batch.arms, batch.abs_adv, self.num_arms)
        return {self.arms[k]: float(v) for k, v in zip(present, means, strict=True)}

    def _extra_stats(self) -> dict[str, float]:
        return {"curriculum/target_difficulty": self.target}

    def _state(self) -> dict[str, Any]:
        return {"target": self.target}

    def _load_state(self, state: Mapping[str, Any]) -> None:
        self.target = float(state["target"])
