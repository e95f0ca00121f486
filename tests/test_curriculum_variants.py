"""The bandit variants beyond the paper: each one's defining property."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sec.curriculum import SECBandit, boltzmann, build_curriculum

ARMS = [(1,)] * 4 + [(2,)] * 4 + [(3,)] * 4
LEVEL = np.array([a[0] for a in ARMS])


def bandit(**kw):
    base = {"alpha": 0.5, "tau": 1.0, "seed": 0}
    base.update(kw)
    return SECBandit(ARMS, ["level"], **base)


def grpo_abs_adv(rewards: np.ndarray) -> np.ndarray:
    """|A| of GRPO with population std over one group (SEC.md §1)."""
    std = rewards.std()
    return np.abs(rewards - rewards.mean()) / std if std > 0 else np.zeros_like(rewards)


def test_ucb_favours_the_less_observed_arm_and_its_bonus_shrinks():
    b = bandit(selection="ucb", ucb_c=1.0)
    for _ in range(6):  # observe arm 1 only, with zero reward: its Q stays 0 like the others
        b.update([0, 1], [0.0, 0.0])
    p = b.probs()
    assert p[0] < p[1] == pytest.approx(p[2])
    bonus = b.ucb_bonus()
    np.testing.assert_allclose(bonus, np.sqrt(np.log(7.0) / np.array([7.0, 1.0, 1.0])))
    # with c = 0 UCB is the paper's Boltzmann policy
    plain = bandit(selection="ucb", ucb_c=0.0)
    plain.q[:] = [0.1, 0.3, 0.2]
    np.testing.assert_allclose(plain.probs(), boltzmann(plain.q, 1.0))


def test_thompson_posterior_narrows_and_concentrates_on_the_best_arm():
    b = bandit(selection="thompson", thompson_sigma=0.5)
    # no evidence: equal means and widths, so every arm wins about a third of the draws
    np.testing.assert_allclose(b.probs(), [1 / 3] * 3, atol=0.03)
    before = b.posterior_std().copy()
    for _ in range(30):
        b.update([4, 5, 0, 8], [1.0, 1.0, 0.0, 0.0])  # arm 2 pays 1, arms 1 and 3 pay 0
    assert np.all(b.posterior_std() < before)
    idx = np.concatenate([b.sample(50) for _ in range(4)])
    assert np.mean(LEVEL[idx] == 2) > 0.95 and b.probs()[1] > 0.95
    # asking for the probabilities never moves the policy's own RNG
    state = json.dumps(b.state_dict())
    b.probs()
    assert json.dumps(b.state_dict()) == state


def test_epsilon_greedy_probabilities_are_exact():
    b = bandit(selection="epsilon_greedy", epsilon=0.3)
    b.q[:] = [0.1, 0.5, 0.2]
    np.testing.assert_allclose(b.probs(), [0.1, 0.8, 0.1])
    b.q[:] = [0.5, 0.5, 0.2]  # ties split the greedy share
    np.testing.assert_allclose(b.probs(), [0.1 + 0.35, 0.1 + 0.35, 0.1])
    idx = np.concatenate([b.sample(100) for _ in range(50)])
    np.testing.assert_allclose([np.mean(LEVEL[idx] == k) for k in (1, 2, 3)], [0.45, 0.45, 0.1], atol=0.02)


def test_progress_is_the_change_of_an_arms_mean_reward():
    b = bandit(objective="progress", alpha=1.0)
    r = b.update([0, 1, 4, 5], [9.0, 9.0, 9.0, 9.0], [0.0, 0.2, 1.0, 1.0])
    assert r == {(1,): 0.0, (2,): 0.0}  # first observation of each arm: no change yet
    r = b.update([0, 1, 4, 5], [9.0] * 4, [0.5, 0.5, 1.0, 0.0])
    assert r[(1,)] == pytest.approx(0.4) and r[(2,)] == pytest.approx(0.5)
    np.testing.assert_allclose(b.q, [0.4, 0.5, 0.0])
    with pytest.raises(ValueError, match="task reward"):
        b.update([0], [1.0])


def test_success_rate_objective_equals_grpo_abs_advantage_on_binary_rewards():
    b = bandit(objective="success_rate", alpha=1.0)
    rng = np.random.default_rng(0)
    for _ in range(20):
        k = int(rng.integers(0, 9))
        rewards = np.array([1.0] * k + [0.1] * (8 - k))  # correct, or the 0.1 format reward
        r = b.update([4] * 8, np.zeros(8), rewards)[(2,)]
        success = (rewards >= 1.0).astype(float)
        assert r == pytest.approx(2 * np.sqrt(k / 8 * (1 - k / 8)))
        assert r == pytest.approx(grpo_abs_adv(success).mean())


@pytest.mark.parametrize(
    "variant",
    [
        {"selection": "ucb"},
        {"selection": "thompson"},
        {"selection": "epsilon_greedy"},
        {"objective": "progress"},
        {"objective": "success_rate"},
    ],
)
def test_variants_resume_the_same_trace(variant):
    cfg = {"name": "v", "policy": "sec", "arm_fields": ["level"], "alpha": 0.5, "tau": 0.5, **variant}

    def run(policy, steps, start):
        trace = []
        for s in range(start, start + steps):
            idx = policy.sample(4)
            rows = np.repeat(idx, 2)
            trace.append(idx.tolist())
            policy.update(rows, (rows * 0.13 + s) % 1.0, (rows + s) % 2 * 1.0)
        return trace

    a = build_curriculum(cfg, ARMS, total_steps=8, seed=3)
    run(a, 3, 0)
    state = json.loads(json.dumps(a.state_dict()))
    b = build_curriculum(cfg, ARMS, total_steps=8, seed=77)
    b.load_state_dict(state)
    assert run(b, 5, 3) == run(a, 5, 3)


def test_unknown_variant_is_rejected():
    with pytest.raises(ValueError, match="selection"):
        bandit(selection="softmax2")
    with pytest.raises(ValueError, match="objective"):
        bandit(objective="loss")
