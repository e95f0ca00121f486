"""Replay tests of the peers' curricula: recorded batches (tests/replay.py) go through our class
(built from its conf/curriculum YAML) and through a transcription of the released rule written
here in plain Python / numpy from the source the class docstring cites (not calling our code),
step by step: values, probabilities, and with a shared RNG stream (the same seed) the draws.

What the transcriptions share with our classes by design, not by copying: the way a categorical
draw and a uniform within-arm draw consume a numpy ``Generator`` (``choice`` then ``integers``;
the releases use ``random.Random`` / torch), so that equal rules give equal draws.
"""

from __future__ import annotations

import numpy as np
import pytest
from curricula import build
from replay import ARMS, LEVELS, rollouts, rows_by_arm

SIZES = np.bincount(LEVELS)[1:]
START = np.concatenate([[0], np.cumsum(SIZES)[:-1]])
STEPS, SLOTS = 25, 6


def within_uniform(rng: np.random.Generator, arms: np.ndarray) -> np.ndarray:
    """Algorithm 1's second draw: a problem uniformly inside each slot's arm (problems of an arm
    are contiguous here)."""
    return START[arms] + rng.integers(0, SIZES[arms])


# ---------------------------------------------------------------------------------------- DUMP
class DumpRef:
    """ZhentingWang/DUMP verl/utils/curriculum_learning.py: LearnabilityEstimator.update (window
    of signed advantages, mu = mean |window|, n_samples += n), compute_sampling_weights (mu +
    sqrt(2 ln(N + 1) / (n + 1)), N = max(1, sum n), softmax at temperature 0.1)."""

    def __init__(self, sources: list[int], window: int = 300, temperature: float = 0.1) -> None:
        self.sources, self.window, self.temperature = sources, window, temperature
        self.recent = {s: [] for s in sources}
        self.mu = {s: 0.0 for s in sources}
        self.n = {s: 0 for s in sources}
        self.weights = {s: 1.0 / len(sources) for s in sources}

    def update_weights(self, source_advantages: dict[int, list[float]]) -> None:
        for s, adv in source_advantages.items():
            self.recent[s].extend(adv)
            if len(self.recent[s]) > self.window:
                self.recent[s] = self.recent[s][-self.window :]
            self.mu[s] = np.mean(np.abs(np.array(self.recent[s])))
            self.n[s] += len(adv)
        total = max(1, sum(self.n.values()))
        scores = np.array([self.mu[s] + 1.0 * np.sqrt(2 * np.log(total + 1) / (self.n[s] + 1)) for s in self.sources])
        e = np.exp((scores - np.max(scores)) / self.temperature)
        self.weights = dict(zip(self.sources, e / np.sum(e), strict=True))


@pytest.mark.parametrize("window", [300, 5])
def test_dump_replays_its_released_rule(window):
    ours = build("dump", ARMS, seed=3, window=window)
    ref, rng = DumpRef([1, 2, 3], window=window), np.random.default_rng(3)
    for step in range(STEPS):
        w = np.array([ref.weights[s] for s in (1, 2, 3)])
        np.testing.assert_allclose(list(ours.probs().values()), w, rtol=1e-12, atol=1e-15)
        drawn = ours.sample(SLOTS)
        arms = rng.choice(3, size=SLOTS, p=w)
        np.testing.assert_array_equal(drawn, within_uniform(rng, arms))
        rows, adv, rewards = rollouts(drawn, step)
        ours.update(rows, np.abs(adv), rewards)
        ref.update_weights(rows_by_arm(rows, adv))
        np.testing.assert_allclose(ours.q, [ref.mu[s] for s in (1, 2, 3)], rtol=1e-12, atol=1e-15)
        assert ours.observed.tolist() == [ref.n[s] for s in (1, 2, 3)]


# --------------------------------------------------------------------------------------- MoPPS
def mopps_update(alpha: float, beta: float, s: float, n: int, lam: float, a0: float, b0: float) -> tuple[float, float]:
    """thu-rllab/MoPPS recipe/ours/mopps.py L77-78 as the paper states it (s: success rate of n
    rollouts): alpha <- lam alpha + (1 - lam) alpha0 + s n, beta likewise with (1 - s) n."""
    return alpha * lam + a0 * (1 - lam) + s * n, beta * lam + b0 * (1 - lam) + (1 - s) * n


def mopps_update_as_released(alpha: float, s: float, n: int, lam: float, a0: float) -> float:
    """The released line verbatim: ``... + s * n if n > 1 else 8`` (a conditional expression)."""
    return alpha * lam + a0 * (1 - lam) + s * n if n > 1 else 8


def test_mopps_replays_the_paper_rule_at_arm_level():
    ours = build("mopps", ARMS, seed=11)
    rng = np.random.default_rng(11)
    alpha, beta = {s: 1.0 for s in (1, 2, 3)}, {s: 1.0 for s in (1, 2, 3)}
    for step in range(STEPS):
        a, b = np.array([alpha[s] for s in (1, 2, 3)]), np.array([beta[s] for s in (1, 2, 3)])
        r = rng.beta(a, b, (SLOTS, 3))  # sample_batch: a posterior draw per candidate, top-1 closest to 0.5
        arms = np.argsort((r - 0.5) ** 2, axis=1)[:, 0]
        drawn = ours.sample(SLOTS)
        np.testing.assert_array_equal(drawn, within_uniform(rng, arms))
        rows, adv, rewards = rollouts(drawn, step)
        ours.update(rows, np.abs(adv), rewards)
        for level, rs in rows_by_arm(rows, rewards).items():
            success = float(np.mean(np.array(rs) >= 1.0))
            alpha[level], beta[level] = mopps_update(alpha[level], beta[level], success, len(rs), 0.5, 1.0, 1.0)
        np.testing.assert_allclose(ours.alpha, [alpha[s] for s in (1, 2, 3)], rtol=1e-13)
        np.testing.assert_allclose(ours.beta, [beta[s] for s in (1, 2, 3)], rtol=1e-13)
        # probs(): the chance each arm's draw is the closest, against a large Monte-Carlo estimate
        a = np.array([alpha[s] for s in (1, 2, 3)])
        b = np.array([beta[s] for s in (1, 2, 3)])
        r = np.random.default_rng(step).beta(a, b, (100_000, 3))
        mc = np.bincount(np.argsort((r - 0.5) ** 2, axis=1)[:, 0], minlength=3) / 100_000
        np.testing.assert_allclose(list(ours.probs().values()), mc, atol=0.006)


def test_mopps_implements_the_paper_not_the_precedence_slip():
    ours = build("mopps", [(1,), (1,)], seed=0)
    ours.update([0], [0.0], [1.0])  # one rollout: n = 1
    assert ours.alpha[0] == pytest.approx(mopps_update(1.0, 1.0, 1.0, 1, 0.5, 1.0, 1.0)[0]) == 2.0
    assert mopps_update_as_released(1.0, 1.0, 1, 0.5, 1.0) == 8  # what the released line computes
    assert mopps_update_as_released(1.0, 0.5, 4, 0.5, 1.0) == mopps_update(1.0, 1.0, 0.5, 4, 0.5, 1.0, 1.0)[0]


# ---------------------------------------------------------------------------------- learnability
def test_learnability_replays_p_times_one_minus_p_of_the_recent_success_rate():
    ours = build("learnability", ARMS, seed=5)
    rng = np.random.default_rng(5)
    recent = {s: 0.5 for s in (1, 2, 3)}  # unknown: maximal learnability
    for step in range(STEPS):
        w = np.array([recent[s] * (1 - recent[s]) for s in (1, 2, 3)])
        p = w / w.sum() if w.sum() > 0 else np.full(3, 1 / 3)
        np.testing.assert_allclose(list(ours.probs().values()), p, rtol=1e-12)
        drawn = ours.sample(SLOTS)
        np.testing.assert_array_equal(drawn, within_uniform(rng, rng.choice(3, size=SLOTS, p=p)))
        rows, adv, rewards = rollouts(drawn, step)
        ours.update(rows, np.abs(adv), rewards)
        for level, rs in rows_by_arm(rows, rewards).items():
            recent[level] = float(np.mean(np.array(rs) >= 1.0))


# ----------------------------------------------------------------------------------------- E2H
def e2h_gaussian(t: int, T: int, K: int, mu_exp: float = 0.5, sigma: float = 0.5) -> list[float]:
    """divelab/E2H-Reasoning src/trainer.py _gaussian_schedule with min_prob=True."""
    mu = (t / T) ** mu_exp * (K - 1)
    p_min = 2 / (K * (K + 1))
    base = [np.exp(-((i - mu) ** 2) / (2 * sigma**2)) for i in range(K)]
    total = sum(base)
    return [p_min + (1 - K * p_min) * (b / total) for b in base]


def e2h_cosine(t: int, T: int, K: int) -> list[float]:
    """divelab/E2H-Reasoning src/trainer.py _cosine_schedule."""
    total = K * (K + 1) / 2.0
    a = 0.5 * (1 + np.cos(np.pi * t / T))
    probs = [max(a * (K - i) / total + (1 - a) * (i + 1) / total, 2 / (K * (K + 1))) for i in range(K)]
    return [p / sum(probs) for p in probs]


@pytest.mark.parametrize("name,schedule", [("e2h", e2h_gaussian), ("e2h_cosine", e2h_cosine)])
def test_e2h_replays_the_task_sampler_draw_for_draw(name, schedule):
    T, seed = 12, 4
    ours = build(name, ARMS, total_steps=T, seed=seed)
    # TaskSampler.__init__: one permutation per level, in level order; __iter__: pointers wrap
    rng = np.random.default_rng(seed)
    level_col = LEVELS - 1
    buckets = {t: rng.permutation(np.where(level_col == t)[0]) for t in range(3)}
    ptr = {t: 0 for t in range(3)}
    for i in range(T):
        probs = np.array(schedule(i, T, 3))
        np.testing.assert_allclose(list(ours.probs().values()), probs, rtol=1e-12)
        chosen = rng.choice(np.arange(3), size=SLOTS, p=probs, replace=True)
        want = []
        for t in chosen:
            want.append(int(buckets[int(t)][ptr[int(t)] % len(buckets[int(t)])]))
            ptr[int(t)] += 1
        assert ours.sample(SLOTS).tolist() == want
    assert schedule(0, T, 3)[0] > schedule(T - 1, T, 3)[0]  # easy first, then hard


# -------------------------------------------------------------------------------------- AdaRFT
def test_adarft_replays_the_target_update_and_picks_the_nearest_problems():
    ours = build("adarft", ARMS, seed=2)
    difficulty = 100.0 * (LEVELS - 1) / 2  # levels 1 / 2 / 3 on the paper's 0-100 scale
    target, slots = 0.0, 8  # T_0 = 0 (ray_trainer.py L432)
    for step in range(STEPS):
        drawn = ours.sample(slots)
        assert len(set(drawn.tolist())) == slots  # no problem twice while the nearest levels suffice
        diffs = np.abs(difficulty - target)  # _select_closest_to_target: the B smallest |d - T|
        others = np.setdiff1d(np.arange(LEVELS.size), drawn)
        assert diffs[drawn].max() <= diffs[others].min()
        rows, adv, rewards = rollouts(drawn, step)
        ours.update(rows, np.abs(adv), rewards)
        current_reward = np.mean(rewards)  # mean sequence reward of the step (L962-963)
        target = np.clip(target + 50 * np.tanh(2 * (current_reward - 0.5)), 0, 100)
        assert ours.target == pytest.approx(target, rel=1e-13, abs=1e-12)
        assert ours.stats()["curriculum/target_difficulty"] == ours.target
    assert 0.0 < ours.target < 100.0  # the recorded rewards put the target between the extremes
