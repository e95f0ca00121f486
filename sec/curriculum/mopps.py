"""MoPPS at arm level: a discounted Beta posterior of every arm's success rate; each slot takes
the arm whose posterior draw is closest to a target (Model Predictive Prompt Selection, arXiv
2507.04632).

Source: thu-rllab/MoPPS at a883f51, ``recipe/ours/mopps.py``: ``PosteriorSampler.sample_batch``
(L26-69: ``r ~ Beta(alpha, beta)`` per candidate prompt, strategy ``topk`` keeps the prompts
of smallest ``(r - target)^2``) and ``train`` (L71-79: per prompt with success rate ``s`` over
``n`` rollouts, ``alpha <- lambda alpha + (1 - lambda) alpha0 + s n``, ``beta <- lambda beta +
(1 - lambda) beta0 + (1 - s) n``); lambda 0.5 in the released run scripts
(``recipe/ours/scripts/countdown/cd_verl_3b_topk_noinit.sh`` L138), target 0.5
(``recipe/ours/config/our_trainer.yaml``, ``bandit_target_mean``) and prior Beta(1, 1)
(``PosteriorSampler.__init__`` defaults, L8).

The released ``train`` lines end in ``... + s * n if n > 1 else 8``, which Python reads as
``(whole update) if n > 1 else 8``: with one rollout per prompt alpha and beta become 8. This
class implements the rule the paper states (the update above for every ``n``).

Arm level (the issue's adaptation): one posterior per arm, updated once per step from the arm's
``s`` successes in ``k`` rollouts (``alpha <- lambda alpha + (1 - lambda) alpha0 + s``, ``beta
<- lambda beta + (1 - lambda) beta0 + k - s``; arms absent from the batch keep theirs, as unsampled
prompts do); every batch slot draws ``r(c) ~ Beta(alpha(c), beta(c))`` for every arm and takes
the arm of smallest ``(r(c) - target)^2`` (top-1 per slot, as top-B over a candidate pool is
not defined for K < B arms), then a problem inside the arm with the ``within`` part.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sec.curriculum.base import Arm, Batch, CurriculumPolicy
from sec.curriculum.within import Within


class MoPPS(CurriculumPolicy):
    """Discounted Beta posteriors per arm, posterior draws closest to ``target`` (module doc).

    :meth:`probs` (the chance that an arm's draw is the closest) is computed, not sampled: each
    posterior is discretised on ``GRID`` cells of [0, 1], its mass binned by distance to the
    target (bins of ``1 / GRID``), and ``P(c) = sum_d m_c(d) prod_{j != c} P(D_j > d)`` with half
    of a shared bin counted as farther (exact up to the grid; Beta sampling for a Monte-Carlo
    estimate costs milliseconds per step). The policy's RNG is untouched.

    Args:
        arm_of_problem, name, arm_fields, total_steps, seed: see
            :class:`~sec.curriculum.base.CurriculumPolicy`.
        within: the within-arm draw.
        decay: lambda in [0, 1] (MoPPS 0.5): weight of the old posterior.
        alpha0, beta0: the Beta prior, > 0 (MoPPS 1, 1).
        target: the success rate to aim at, in [0, 1] (MoPPS 0.5).
        threshold: the task reward that counts as a success.

    Raises:
        ValueError: for parameters out of range.
    """

    GRID = 512

    def __init__(
        self,
        arm_of_problem: Sequence[Arm],
        *,
        name: str,
        arm_fields: Sequence[str],
        total_steps: int,
        seed: int,
        within: Within,
        decay: float,
        alpha0: float,
        beta0: float,
        target: float,
        threshold: float,
    ) -> None:
        super().__init__(arm_of_problem, name=name, arm_fields=arm_fields, total_steps=total_steps, seed=seed)
        if not (0.0 <= decay <= 1.0 and alpha0 > 0 and beta0 > 0 and 0.0 <= target <= 1.0):
            raise ValueError("curriculum: MoPPS needs decay in [0, 1], alpha0 > 0, beta0 > 0 and target in [0, 1]")
        self.decay, self.alpha0, self.beta0 = float(decay), float(alpha0), float(beta0)
        self.target, self.threshold = float(target), float(threshold)
        self.within = within
        within.setup(self.members, self.rng)
        #: Beta posterior of every arm's success rate, float64 (K,) each
        self.alpha = np.full(self.num_arms, self.alpha0)
        self.beta = np.full(self.num_arms, self.beta0)
        self._memo: tuple[bytes, np.ndarray] | None = None
        # the grid of _closest_probs: cell midpoints and each cell's distance bin, per arm row
        x = (np.arange(self.GRID) + 0.5) / self.GRID
        self._log_x, self._log_1mx = np.log(x), np.log1p(-x)
        dist_bin = np.minimum((np.abs(x - self.target) * self.GRID).astype(np.int64), self.GRID - 1)
        self._flat_bin = np.arange(self.num_arms)[:, None] * self.GRID + dist_bin[None, :]

    def choose(self, draws: np.ndarray) -> np.ndarray:
        """Arm of each row of posterior draws (rows, K): the smallest ``(r - target)^2``."""
        return np.argmin((draws - self.target) ** 2, axis=1)

    def _probs(self) -> np.ndarray:
        key = self.alpha.tobytes() + self.beta.tobytes()
        if self._memo is None or self._memo[0] != key:
            self._memo = (key, self._closest_probs())
        return self._memo[1].copy()

    def _closest_probs(self) -> np.ndarray:
        log_pdf = (self.alpha[:, None] - 1) * self._log_x + (self.beta[:, None] - 1) * self._log_1mx
        w = np.exp(log_pdf - log_pdf.max(axis=1, keepdims=True))
        w /= w.sum(axis=1, keepdims=True)
        k = self.num_arms
        mass = np.bincount(self._flat_bin.ravel(), weights=w.ravel(), minlength=k * self.GRID).reshape(k, self.GRID)
        farther = np.maximum(1.0 - (np.cumsum(mass, axis=1) - mass) - 0.5 * mass, 0.0)  # P(D_j > d)
        ones = np.ones((1, self.GRID))
        before = np.cumprod(np.vstack([ones, farther[:-1]]), axis=0)  # prod over j < c
        after = np.cumprod(np.vstack([farther[1:], ones])[::-1], axis=0)[::-1]  # prod over j > c
        p = (mass * before * after).sum(axis=1)
        return p / p.sum()

    def _sample(self, n: int) -> np.ndarray:
        arms = self.choose(self.rng.beta(self.alpha, self.beta, (n, self.num_arms)))
        return self.within.draw(arms, self.rng)

    def _learn(self, batch: Batch) -> dict[Arm, float]:
        success = (batch.need_rewards("curriculum=mopps") >= self.threshold).astype(np.float64)
        k = np.bincount(batch.arms, minlength=self.num_arms)
        s = np.bincount(batch.arms, weights=success, minlength=self.num_arms)
        seen = k > 0
        lam = self.decay
        self.alpha[seen] = self.alpha[seen] * lam + self.alpha0 * (1 - lam) + s[seen]
        self.beta[seen] = self.beta[seen] * lam + self.beta0 * (1 - lam) + (k[seen] - s[seen])
        return {self.arms[c]: float(s[c] / k[c]) for c in np.flatnonzero(seen)}

    def _values(self) -> np.ndarray:
        """Posterior mean success rate ``alpha / (alpha + beta)`` (logged as ``/q``)."""
        return self.alpha / (self.alpha + self.beta)

    def _state(self) -> dict[str, Any]:
        return {"alpha": self.alpha.tolist(), "beta": self.beta.tolist(), "within": self.within.state_dict()}

    def _load_state(self, state: Mapping[str, Any]) -> None:
        self.alpha = np.asarray(state["alpha"], dtype=np.float64)
        self.beta = np.asarray(state["beta"], dtype=np.float64)
        self.within.load_state_dict(state["within"])
