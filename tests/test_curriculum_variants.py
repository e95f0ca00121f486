"""The bandit variants beyond the paper: each one's defining property."""

from __future__ import annotations

import json

import numpy as np
import pytest
from curricula import build, composed
from hydra.errors import HydraException

from sec.curriculum import boltzmann, build_curriculum

ARMS = [(1,)] * 4 + [(2,)] * 4 + [(3,)] * 4
LEVEL = np.array([a[0] for a in ARMS])


def bandit(name: str, *overrides: str, **kw):
    """conf/curriculum/<name>.yaml (alpha 0.5, tau 1.0 unless overridden)."""
    return build(name, ARMS, *overrides, **kw)


def probs(policy) -> np.ndarray:
    return np.array(list(policy.probs().values()))


def grpo_abs_adv(rewards: np.ndarray) -> np.ndarray:
    """|A| of GRPO with population std over one group (SEC.md §1)."""
    std = rewards.std()
    return np.abs(rewards - rewards.mean()) / std if std > 0 else np.zeros_like(rewards)


def test_ucb_favours_the_less_observed_arm_and_its_bonus_shrinks():
    b = bandit("sec_ucb", "curriculum.selection.c=1.0")
    for _ in range(6):  # observe arm 1 only, with zero reward: its Q stays 0 like the others
        b.update([0, 1], [0.0, 0.0])
    p = probs(b)
    assert p[0] < p[1] == pytest.approx(p[2])
    bonus = b.selection.bonus(b.observed, b.updates)
    np.testing.assert_allclose(bonus, np.sqrt(np.log(7.0) / np.array([7.0, 1.0, 1.0])))
    # with c = 0 UCB is the paper's Boltzmann policy
    plain = bandit("sec_ucb", "curriculum.selection.c=0.0")
    plain.q[:] = [0.1, 0.3, 0.2]
    np.testing.assert_allclose(probs(plain), boltzmann(plain.q, 1.0))


def test_thompson_posterior_narrows_and_concentrates_on_the_best_arm():
    b = bandit("sec_thompson", "curriculum.selection.sigma=0.5")
    # no evidence: equal means and widths, so every arm wins about a third of the draws
    np.testing.assert_allclose(probs(b), [1 / 3] * 3, atol=0.03)
    before = b.selection.posterior_std(b.observed).copy()
    for _ in range(30):
        b.update([4, 5, 0, 8], [1.0, 1.0, 0.0, 0.0])  # arm 2 pays 1, arms 1 and 3 pay 0
    assert np.all(b.selection.posterior_std(b.observed) < before)
    idx = np.concatenate([b.sample(50) for _ in range(4)])
    assert np.mean(LEVEL[idx] == 2) > 0.95 and b.probs()[(2,)] > 0.95
    # asking for the probabilities never moves the policy's own RNG
    state = json.dumps(b.state_dict())
    b.probs()
    assert json.dumps(b.state_dict()) == state


def test_epsilon_greedy_probabilities_are_exact():
    b = bandit("sec_egreedy", "curriculum.selection.epsilon=0.3")
    b.q[:] = [0.1, 0.5, 0.2]
    np.testing.assert_allclose(probs(b), [0.1, 0.8, 0.1])
    b.q[:] = [0.5, 0.5, 0.2]  # ties split the greedy share
    np.testing.assert_allclose(probs(b), [0.1 + 0.35, 0.1 + 0.35, 0.1])
    idx = np.concatenate([b.sample(100) for _ in range(50)])
    np.testing.assert_allclose([np.mean(LEVEL[idx] == k) for k in (1, 2, 3)], [0.45, 0.45, 0.1], atol=0.02)


def test_progress_is_the_change_of_an_arms_mean_reward():
    b = bandit("sec_progress", alpha=1.0)
    r = b.update([0, 1, 4, 5], [9.0, 9.0, 9.0, 9.0], [0.0, 0.2, 1.0, 1.0])
    assert r == {(1,): 0.0, (2,): 0.0}  # first observation of each arm: no change yet
    r = b.update([0, 1, 4, 5], [9.0] * 4, [0.5, 0.5, 1.0, 0.0])
    assert r[(1,)] == pytest.approx(0.4) and r[(2,)] == pytest.approx(0.5)
    np.testing.assert_allclose(b.q, [0.4, 0.5, 0.0])
    with pytest.raises(ValueError, match="task reward"):
        b.update([0], [1.0])
    assert b.objective.state_dict() == {"prev": [0.5, 0.5, None]}


def test_success_rate_objective_equals_grpo_abs_advantage_on_binary_rewards():
    b = bandit("sec_success", alpha=1.0)
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
        "curriculum/selection=ucb",
        "curriculum/selection=thompson",
        "curriculum/selection=egreedy",
        "curriculum/objective=progress",
        "curriculum/objective=success_rate",
    ],
)
def test_variants_resume_the_same_trace(variant):
    cfg = composed("sec", variant, "curriculum.tau=0.5")

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
    with pytest.raises(HydraException, match="selection"):
        bandit("sec", "curriculum/selection=softmax2")
    with pytest.raises(HydraException, match="objective"):
        bandit("sec", "curriculum/objective=loss")
    # the string switches of before are refused with one line naming the config group
    with pytest.raises(
        ValueError, match=r"curriculum\.selection is a config group now: write curriculum/selection=ucb"
    ):
        build_curriculum({**composed("sec"), "selection": "ucb"}, ARMS, total_steps=1, seed=0)
    # a part that cannot be imported: one line
    bad = {**composed("sec"), "selection": {"_target_": "sec.curriculum.Softmax2"}}
    with pytest.raises(ValueError, match=r"^curriculum: .*Softmax2") as err:
        build_curriculum(bad, ARMS, total_steps=1, seed=0)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="epsilon must be in"):
        bandit("sec_egreedy", "curriculum.selection.epsilon=1.5")
    with pytest.raises(ValueError, match="explore must be one of"):
        bandit("sec_egreedy", "curriculum.selection.explore=some")
