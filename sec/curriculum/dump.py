"""DUMP: distribution-level curriculum by a UCB bandit over mean |advantage| (Wang et al.,
"DUMP: Automated Distribution-Level Curriculum Learning for RL-based LLM Post-training", arXiv
2504.09710).

Source: ZhentingWang/DUMP at 235e85d, ``verl/utils/curriculum_learning.py``:
``LearnabilityEstimator.update`` (L50-79: a sliding window of the last ``window_size = 300``
per-rollout advantages, ``mu = mean(|window|)``, ``n_samples += rollouts``),
``CurriculumController.compute_sampling_weights`` (L137-197: score ``mu + sqrt(2 ln(N + 1) /
(n + 1))`` with ``N = max(1, sum n)``, softmax with temperature 0.1) and
``CurriculumSampler.__iter__`` (L325-403: per slot, a source by the weights, then an index
uniformly within it); the trainer feeds every training batch's rollouts
(``verl/trainer/ppo/ray_trainer.py`` L1213-1250).

Here a source is an arm and the rule is our parts: :class:`~sec.curriculum.selection.UCB` with
``c = sqrt(2)`` and ``tau = 0.1`` over rollout counts (``ln(N + 1)`` vs DUMP's
``ln(max(1, N) + 1)`` differ only before the first update, when every arm's bonus is equal and
the softmax uniform either way), and a uniform within-arm draw. Differences from the release:

* the window holds each rollout's token-mean |A| (our feed's quantity); DUMP stores the signed
  token-mean A and takes |.| of it, the same number when A is constant over a response's tokens
  (GRPO / RLOO outcome advantages), not for PPO's per-token GAE;
* DUMP also updates its estimators from validation batches with ``advantages = rewards``
  (``_validate``, L708-800); validation does not touch our curriculum.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sec.curriculum.bandit import ArmBandit
from sec.curriculum.base import Arm, Batch
from sec.curriculum.selection import Selection
from sec.curriculum.within import Within


class DUMP(ArmBandit):
    """Per arm, the mean |A| of its last ``window`` rollouts; every slot draws from the
    selection rule (DUMP: UCB-softmax) over those means with rollouts as the unit of evidence.

    Args:
        arm_of_problem, name, arm_fields, total_steps, seed, selection, within, q_init, tau:
            see :class:`~sec.curriculum.bandit.ArmBandit` (``q_init``: the mean before any
            rollout, DUMP 0; ``tau``: DUMP 0.1).
        window: rollouts per arm the mean |A| covers, >= 1 (DUMP 300).

    Raises:
        ValueError: if ``window < 1``.
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
        window: int,
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
        if int(window) < 1:
            raise ValueError(f"curriculum.window must be >= 1, got {window}")
        self.window = int(window)
        #: the last ``window`` |A| of every arm (oldest first)
        self.recent: list[np.ndarray] = [np.zeros(0) for _ in self.arms]

    def _learn(self, batch: Batch) -> dict[Arm, float]:
        out = {}
        for k in np.unique(batch.arms):
            values = batch.abs_adv[batch.arms == k]
            self.recent[k] = np.concatenate([self.recent[k], values])[-self.window :]
            self.q[k] = np.mean(self.recent[k])
            self.observed[k] += values.size
            out[self.arms[k]] = float(np.mean(values))
        self.updates += batch.arms.size
        return out

    def _state(self) -> dict[str, Any]:
        return {**super()._state(), "recent": [r.tolist() for r in self.recent]}

    def _load_state(self, state: Mapping[str, Any]) -> None:
        super()._load_state(state)
        self.recent = [np.asarray(r, dtype=np.float64) for r in state["recent"]]
