"""Selection rules: how a batch slot picks its arm from per-arm values.

Each rule is one small class built from ``conf/curriculum/selection/<rule>.yaml`` (nested
``_target_``); a bandit (:class:`sec.curriculum.bandit.ArmBandit`) asks it for the
probabilities of the next slot (:meth:`Selection.probs`, side-effect free) and for the arms of
``n`` slots (:meth:`Selection.draw`, from the policy's RNG). The evidence a rule sees:

* ``q``: value of every arm, float64 (K,);
* ``n``: observations of every arm (updates that saw it, or rollouts for DUMP), int (K,);
* ``t``: total observations so far (same unit as ``n``);
* ``tau``: the bandit's temperature (``curriculum.tau``), read by the softmax rules.

A new rule is one subclass here (or in any importable module) plus its YAML.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


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


class Selection(ABC):
    """Picks the arm of each batch slot from the arms' values (see module doc)."""

    @abstractmethod
    def probs(self, q: np.ndarray, n: np.ndarray, t: int, tau: float) -> np.ndarray:
        """Probability of each arm for one slot, float64 (K,); changes no state."""

    def draw(self, q: np.ndarray, n: np.ndarray, t: int, tau: float, size: int, rng: np.random.Generator) -> np.ndarray:
        """The arms of ``size`` slots, int (size,): i.i.d. from :meth:`probs` by default."""
        return rng.choice(q.size, size=size, p=self.probs(q, n, t, tau))


class Boltzmann(Selection):
    """The paper's rule: ``p = softmax(Q / tau)`` (SEC.md §1; tau: Table S1, 0.2-1.0)."""

    def probs(self, q: np.ndarray, n: np.ndarray, t: int, tau: float) -> np.ndarray:
        return boltzmann(q, tau)


class UCB(Selection):
    """UCB1-style optimism inside the softmax: ``p = softmax((Q + c sqrt(ln(t + 1) / (n + 1))) / tau)``.

    Rarely observed arms get a bonus that shrinks as evidence accumulates (Auer et al. 2002;
    the paper's future work, SEC.md §1); ``tau -> 0`` gives UCB1's argmax. With ``c = sqrt(2)``,
    ``tau = 0.1`` and rollouts as the unit of ``n`` and ``t`` it is DUMP's rule
    (:class:`sec.curriculum.dump.DUMP`).

    Args:
        c: weight of the bonus, >= 0 (``c = 0``: the paper's Boltzmann rule).

    Raises:
        ValueError: if ``c < 0``.
    """

    def __init__(self, c: float) -> None:
        if not c >= 0:
            raise ValueError(f"curriculum.selection.c must be >= 0, got {c}")
        self.c = float(c)

    def bonus(self, n: np.ndarray, t: int) -> np.ndarray:
        """``c * sqrt(ln(t + 1) / (n + 1))`` per arm, shape (K,)."""
        return self.c * np.sqrt(np.log(t + 1.0) / (n + 1.0))

    def probs(self, q: np.ndarray, n: np.ndarray, t: int, tau: float) -> np.ndarray:
        return boltzmann(q + self.bonus(n, t), tau)


class Thompson(Selection):
    """Thompson sampling: each slot draws ``theta(c) ~ N(Q(c), sigma^2 / (n(c) + 1))`` for every
    arm and takes the argmax (Thompson 1933; the paper's future work, SEC.md §1).

    :meth:`probs` (the chance each arm wins) is estimated from ``MC_DRAWS`` draws of a private
    generator seeded ``MC_SEED``, so asking never moves the policy's RNG (the draws and the
    last answer are cached: a pure function of ``q`` and ``n``).

    Args:
        sigma: prior std of an arm's reward, > 0.

    Raises:
        ValueError: if ``sigma <= 0``.
    """

    MC_DRAWS = 4096
    MC_SEED = 12345

    def __init__(self, sigma: float) -> None:
        if not sigma > 0:
            raise ValueError(f"curriculum.selection.sigma must be > 0, got {sigma}")
        self.sigma = float(sigma)
        self._draws: np.ndarray | None = None  # the private standard normals, (MC_DRAWS, K)
        self._memo: tuple[tuple[bytes, bytes], np.ndarray] | None = None

    def posterior_std(self, n: np.ndarray) -> np.ndarray:
        """``sigma / sqrt(n(c) + 1)`` per arm, shape (K,)."""
        return self.sigma / np.sqrt(n + 1.0)

    def probs(self, q: np.ndarray, n: np.ndarray, t: int, tau: float) -> np.ndarray:
        key = (q.tobytes(), np.asarray(n).tobytes())
        if self._memo is None or self._memo[0] != key:  # the same values are asked for repeatedly
            if self._draws is None or self._draws.shape[1] != q.size:
                self._draws = np.random.default_rng(self.MC_SEED).standard_normal((self.MC_DRAWS, q.size))
            winners = np.argmax(q + self._draws * self.posterior_std(n), axis=1)
            self._memo = (key, np.bincount(winners, minlength=q.size) / winners.size)
        return self._memo[1].copy()

    def draw(self, q: np.ndarray, n: np.ndarray, t: int, tau: float, size: int, rng: np.random.Generator) -> np.ndarray:
        theta = q + rng.standard_normal((size, q.size)) * self.posterior_std(n)
        return np.argmax(theta, axis=1)


class EpsilonGreedy(Selection):
    """Epsilon-greedy: with probability ``epsilon`` explore, else take the arm of largest Q.

    Args:
        epsilon: exploration probability in [0, 1].
        explore: which arms exploration draws from:

            * ``all``: uniform over every arm, ties of the largest Q split the greedy share
              evenly: ``p = epsilon / K + (1 - epsilon) [best] / #best``.
            * ``others`` (the released SEC code's ``greedy``, ``priority.py`` L120-131 in
              Vincent-La/cofa ``sec/``): uniform over the arms other than ``argmax Q`` (the
              first of ties), ``p = (1 - epsilon) [best] + epsilon / (K - 1) [not best]``.

    Raises:
        ValueError: for ``epsilon`` outside [0, 1] or another ``explore``.
    """

    EXPLORE = ("all", "others")

    def __init__(self, epsilon: float, explore: str) -> None:
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"curriculum.selection.epsilon must be in [0, 1], got {epsilon}")
        if explore not in self.EXPLORE:
            raise ValueError(f"curriculum.selection.explore must be one of {self.EXPLORE}, got {explore!r}")
        self.epsilon = float(epsilon)
        self.explore = explore

    def probs(self, q: np.ndarray, n: np.ndarray, t: int, tau: float) -> np.ndarray:
        if self.explore == "all":
            best = np.isclose(q, q.max())
            return self.epsilon / q.size + (1.0 - self.epsilon) * best / best.sum()
        p = np.full(q.size, self.epsilon / max(q.size - 1, 1))
        p[int(np.argmax(q))] = 1.0 if q.size == 1 else 1.0 - self.epsilon
        return p


class Learnability(Selection):
    """Sampling for learnability: ``p(c) ∝ Q(c) (1 - Q(c))`` with ``Q(c)`` the arm's recent
    success rate (Foster et al., "Learning to Reason at the Frontier of Learnability", arXiv
    2502.12272: learnability = p(1 - p), the variance of a Bernoulli success, per question; here
    per arm). Uniform while every arm's learnability is 0.

    Pair it with the ``success_share`` objective (``Q`` = estimated success rate).

    Args:
        floor: the smallest weight an arm keeps, >= 0 (0: the paper's rule; an arm solved
            always or never is then not drawn until every arm is).

    Raises:
        ValueError: if ``floor < 0``.
    """

    def __init__(self, floor: float) -> None:
        if not floor >= 0:
            raise ValueError(f"curriculum.selection.floor must be >= 0, got {floor}")
        self.floor = float(floor)

    def probs(self, q: np.ndarray, n: np.ndarray, t: int, tau: float) -> np.ndarray:
        p = np.clip(q, 0.0, 1.0)
        w = np.maximum(p * (1.0 - p), self.floor)
        total = w.sum()
        return w / total if total > 0 else np.full(q.size, 1.0 / q.size)
