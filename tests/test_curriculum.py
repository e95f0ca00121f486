"""Unit tests of the curriculum math (SEC.md §1)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from curricula import build, composed, curriculum_names, two_field_arms

from sec.curriculum import arms_of_records, boltzmann, build_curriculum

# 3 levels of sizes 2 / 3 / 5 -> problem indices 0-1 level 1, 2-4 level 2, 5-9 level 3
ARMS = [(1,)] * 2 + [(2,)] * 3 + [(3,)] * 5


def sec(seed: int = 0, **kw):
    """conf/curriculum/sec.yaml (alpha 0.5, tau 1.0 unless overridden)."""
    return build("sec", ARMS, seed=seed, **kw)


def probs(policy) -> list[float]:
    return list(policy.probs().values())


def test_boltzmann_matches_formula():
    q = np.array([0.1, 0.5, -0.2])
    for tau in (0.2, 1.0, 4.0):
        expected = np.exp(q / tau) / np.exp(q / tau).sum()
        np.testing.assert_allclose(boltzmann(q, tau), expected, rtol=1e-12)
    # no overflow for large values; a lower temperature is greedier
    p = boltzmann(np.array([1000.0, 999.0]), 1.0)
    np.testing.assert_allclose(p, [1 / (1 + np.exp(-1)), np.exp(-1) / (1 + np.exp(-1))])
    assert boltzmann(q, 0.1).max() > boltzmann(q, 1.0).max()
    with pytest.raises(ValueError):
        boltzmann(q, 0.0)


def test_initial_policy_is_uniform_over_arms():
    np.testing.assert_allclose(probs(sec()), [1 / 3] * 3)


def test_reward_aggregation_over_hand_made_batch():
    b = sec()
    # rows: two rollouts of problem 0 (level 1), two of problem 3 (level 2), two of problem 4 (level 2)
    rows = [0, 0, 3, 3, 4, 4]
    abs_adv = [1.0, 0.0, 0.5, 0.5, 2.0, 0.0]
    r = b.update(rows, abs_adv)
    assert r == {(1,): 0.5, (2,): 0.75}  # level 3 absent
    with pytest.raises(ValueError):
        b.update([0, 1], [1.0])
    with pytest.raises(ValueError):
        b.update([10], [1.0])
    with pytest.raises(ValueError):
        b.update([0], [float("nan")])
    with pytest.raises(ValueError, match="rewards"):
        b.update([0], [1.0], [float("inf")])


def test_td0_update_sampled_arms_only():
    b = sec(alpha=0.5, update_rule="sampled")
    b.q[:] = [0.2, 0.4, 0.6]
    b.update([0, 0, 3, 3, 4, 4], [1.0, 0.0, 0.5, 0.5, 2.0, 0.0])
    # Q <- alpha r + (1 - alpha) Q for sampled arms; level 3 untouched
    np.testing.assert_allclose(b.q, [0.5 * 0.5 + 0.5 * 0.2, 0.5 * 0.75 + 0.5 * 0.4, 0.6])


def test_td0_update_all_arms_decays_absent_arms():
    b = sec(alpha=0.25, update_rule="all")
    b.q[:] = [0.2, 0.4, 0.6]
    b.update([0, 0, 3, 3, 4, 4], [1.0, 0.0, 0.5, 0.5, 2.0, 0.0])
    np.testing.assert_allclose(b.q, [0.25 * 0.5 + 0.75 * 0.2, 0.25 * 0.75 + 0.75 * 0.4, 0.75 * 0.6])


def test_bad_parameters_raise():
    with pytest.raises(ValueError, match="alpha"):
        sec(alpha=0.0)
    with pytest.raises(ValueError, match="tau"):
        sec(tau=-1.0)
    with pytest.raises(ValueError, match="update_rule"):
        sec(update_rule="everything")
    with pytest.raises(ValueError, match="has no _target_"):  # a config from before _target_
        build_curriculum({"name": "sec3d", "policy": "sec3d", "arm_fields": ["level"]}, ARMS, total_steps=1, seed=0)
    with pytest.raises(ValueError, match="empty"):
        build("sec", [])
    with pytest.raises(ValueError, match="total_steps"):
        build("ordered", ARMS, total_steps=0)


def grpo_advantages(rewards: np.ndarray) -> np.ndarray:
    """GRPO advantage A = (r - mean) / std over the group (population std), SEC.md §1."""
    std = rewards.std(axis=-1, keepdims=True)
    return np.where(std > 0, (rewards - rewards.mean(axis=-1, keepdims=True)) / np.where(std > 0, std, 1), 0.0)


@pytest.mark.parametrize("n", [2, 4, 8, 16])
def test_mean_abs_grpo_advantage_is_2_sqrt_p_1_minus_p(n):
    # exact for every group: mean |A| = 2 sqrt(p(1-p)) with p the group's success rate
    for k in range(n + 1):
        r = np.array([1.0] * k + [0.0] * (n - k))
        p = k / n
        assert np.mean(np.abs(grpo_advantages(r))) == pytest.approx(2 * np.sqrt(p * (1 - p)), abs=1e-12)


def test_expected_abs_advantage_peaks_at_half():
    # over large groups drawn with success rate p, E|A| -> 2 sqrt(p(1-p)), max at p=0.5
    rng = np.random.default_rng(0)
    ps = np.array([0.1, 0.3, 0.5, 0.7, 0.9])
    est = [np.abs(grpo_advantages((rng.random((100, 4096)) < p).astype(float))).mean() for p in ps]
    np.testing.assert_allclose(est, 2 * np.sqrt(ps * (1 - ps)), atol=0.01)
    assert int(np.argmax(est)) == 2


def test_bandit_moves_toward_the_informative_arm():
    # arm 2 yields |A| 1, the others 0: its probability must grow above uniform
    b = sec(alpha=0.5, tau=0.5)
    for _ in range(20):
        idx = b.sample(8)
        b.update(idx, [1.0 if ARMS[i] == (2,) else 0.0 for i in idx])
    # Q -> (0, 1, 0), so p(level 2) -> e^(1/tau) / (e^(1/tau) + 2)
    assert b.q[1] > 0.99 and b.q[0] < 0.01 and b.q[2] < 0.01
    assert b.probs()[(2,)] == pytest.approx(np.exp(2) / (np.exp(2) + 2), abs=0.01)


def test_sampling_is_per_slot_then_uniform_within_arm():
    b = sec(tau=1.0)
    b.q[:] = [0.0, 0.0, np.log(2.0)]  # p = 1/4, 1/4, 1/2
    idx = np.concatenate([b.sample(256) for _ in range(40)])
    levels = np.array([ARMS[i][0] for i in idx])
    np.testing.assert_allclose([np.mean(levels == k) for k in (1, 2, 3)], [0.25, 0.25, 0.5], atol=0.02)
    within = idx[levels == 3]
    np.testing.assert_allclose(np.bincount(within - 5, minlength=5) / within.size, [0.2] * 5, atol=0.02)
    assert b.counts.sum() == idx.size


@pytest.mark.parametrize("name", curriculum_names())
def test_seeded_reproducibility_and_state_round_trip(name):
    cfg = composed(name)
    arms = ARMS if cfg["arm_fields"] == ["level"] else two_field_arms(ARMS)

    def run(policy, steps, start=0):
        trace = []
        for s in range(start, start + steps):
            idx = policy.sample(7)
            trace.append(idx.tolist())
            rows = np.repeat(idx, 2)
            policy.update(rows, [(i * 0.37 + s) % 1.0 for i in rows], [float((i + s) % 3 == 0) for i in rows])
        return trace

    a = build_curriculum(cfg, arms, total_steps=10, seed=123)
    b = build_curriculum(cfg, arms, total_steps=10, seed=123)
    assert run(a, 4) == run(b, 4)

    # save after 4 steps, go on 6 more; a fresh policy restored from the JSON state must match
    state = json.loads(json.dumps(a.state_dict()))
    tail_a = run(a, 6, start=4)
    c = build_curriculum(cfg, arms, total_steps=10, seed=999)  # seed irrelevant once restored
    c.load_state_dict(state)
    assert run(c, 6, start=4) == tail_a
    assert c.stats() == a.stats()

    other = build_curriculum(cfg, arms, total_steps=10, seed=124)
    assert run(other, 4) != run(build_curriculum(cfg, arms, total_steps=10, seed=123), 4)


def test_state_of_another_policy_or_arm_set_is_rejected():
    with pytest.raises(ValueError, match="state is for"):
        sec().load_state_dict(build("random", ARMS).state_dict())
    with pytest.raises(ValueError, match="arms"):
        sec().load_state_dict(build("sec", ARMS[:5]).state_dict())


def test_state_of_an_older_version_loads_or_fails_in_one_line():
    # states written before within-category samplers had no "within": they drew uniformly
    state = sec().state_dict()
    del state["within"]
    restored = sec(seed=5)
    restored.load_state_dict(state)
    assert restored.sample(6).tolist() == sec().sample(6).tolist()  # the same draws as the saved policy
    queue = build("sec", ARMS, "curriculum/within=queue")
    with pytest.raises(ValueError, match="no 'within' part"):
        queue.load_state_dict(state)
    del state["q"]
    with pytest.raises(ValueError, match="lacks 'q'"):
        sec().load_state_dict(state)


def test_random_is_uniform_over_problems_without_replacement_per_epoch():
    r = build("random", ARMS, seed=1)
    first_epoch = np.concatenate([r.sample(5), r.sample(5)])
    assert sorted(first_epoch.tolist()) == list(range(10))
    np.testing.assert_allclose(probs(r), [0.2, 0.3, 0.5])


def test_ordered_spends_steps_in_proportion_to_level_size():
    o = build("ordered", ARMS, total_steps=20)
    levels = [[ARMS[i][0] for i in o.sample(10)] for _ in range(20)]
    flat = np.array(levels).ravel()
    # shares 0.2 / 0.3 / 0.5 of the 200 slots, non-decreasing, ending on the hardest level
    np.testing.assert_allclose([np.mean(flat == k) for k in (1, 2, 3)], [0.2, 0.3, 0.5])
    assert np.all(np.diff(flat) >= 0)
    assert levels[0] == [1] * 10 and levels[-1] == [3] * 10
    # past the scheduled steps it stays on the last level
    assert {ARMS[i][0] for i in o.sample(10)} == {3}


def test_reverse_goes_hard_to_easy():
    o = build("reverse", ARMS, total_steps=10)
    flat = np.array([ARMS[i][0] for _ in range(10) for i in o.sample(10)])
    assert np.all(np.diff(flat) <= 0) and flat[0] == 3 and flat[-1] == 1
    np.testing.assert_allclose([np.mean(flat == k) for k in (1, 2, 3)], [0.2, 0.3, 0.5])


def test_two_field_arms_and_difficulty():
    records = [{"task": t, "level": lv} for t in ("countdown", "zebra") for lv in (1, 2, 3) for _ in range(2)]
    arms = arms_of_records(records, ["task", "level"])
    b = build("sec_2d", arms)
    assert b.num_arms == 6 and b.arms[0] == ("countdown", 1)
    assert b.difficulty([0, 1, 10, 11]) == pytest.approx(2.0)
    assert "curriculum/zebra-3/q" in b.stats()
    # ordered over (task, level) arms groups by level: both tasks' level 1 first
    o = build("ordered", arms, "curriculum.arm_fields=[task,level]", total_steps=3)
    assert {records[i]["level"] for i in o.sample(6)} == {1}
    with pytest.raises(KeyError, match="lack"):
        arms_of_records([{"level": 1}], ["task", "level"])
