"""The glue between a policy and an engine (sec/curriculum/feed.py): token-mean |A| and the
draw/feed cycle."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from curricula import build

from sec.curriculum import CurriculumFeed, token_mean_abs


def test_token_mean_abs_sequence_and_token_advantages():
    mask = np.array([[1, 1, 0], [1, 0, 0], [0, 0, 0]], dtype=np.float32)
    seq = np.array([-2.0, 0.5, 3.0])
    # a per-sequence advantage has itself as token mean; an empty response carries nothing
    np.testing.assert_allclose(token_mean_abs(seq, mask), [2.0, 0.5, 0.0])
    tok = np.array([[1.0, -3.0, 100.0], [-4.0, 100.0, 100.0], [5.0, 5.0, 5.0]])
    np.testing.assert_allclose(token_mean_abs(tok, mask), [2.0, 4.0, 0.0])
    # torch tensors (any mask dtype) give the same numbers
    np.testing.assert_allclose(token_mean_abs(torch.tensor(seq), torch.tensor(mask).long()), [2.0, 0.5, 0.0])
    np.testing.assert_allclose(token_mean_abs(torch.tensor(tok), torch.tensor(mask)), [2.0, 4.0, 0.0])
    with pytest.raises(ValueError):
        token_mean_abs(np.ones(2), mask)
    with pytest.raises(ValueError):
        token_mean_abs(np.ones((3, 2)), mask)


def test_feed_draws_then_updates_and_reports_stats():
    problems = [{"level": lv} for lv in (1, 1, 2, 2, 3, 3)]
    policy = build("sec", [(p["level"],) for p in problems])
    feed = CurriculumFeed(policy, problems)
    idx = feed.draw(4)
    rows = np.repeat(idx, 2)
    values = np.array([1.0 if problems[i]["level"] == 2 else 0.0 for i in rows])
    stats = feed.feed(rows, values)
    # the probabilities logged are those the batch was drawn with (uniform at the start)
    assert stats["curriculum/2/prob"] == pytest.approx(1 / 3)
    assert stats["curriculum/sampled_level_mean"] == pytest.approx(np.mean([problems[i]["level"] for i in idx]))
    if any(problems[i]["level"] == 2 for i in idx):
        assert stats["curriculum/2/q"] == pytest.approx(0.5) and stats["curriculum/2/reward"] == 1.0
    assert feed.pop_stats() == stats and feed.pop_stats() == {}


def test_feed_hands_recorded_rewards_to_reward_based_policies():
    problems = [{"level": lv} for lv in (1, 1, 2, 2, 3, 3)]
    policy = build("sec_success", [(p["level"],) for p in problems], alpha=1.0)
    feed = CurriculumFeed(policy, problems)
    idx = feed.draw(3)
    rows = np.repeat(idx, 2)
    feed.record_rewards([1.0, 0.1] * 3)  # one success per group of 2: p = 1/2, r = 2 sqrt(1/4) = 1
    stats = feed.feed(rows, np.zeros(rows.size))
    for lv in {problems[i]["level"] for i in idx}:
        assert stats[f"curriculum/{lv}/reward"] == pytest.approx(1.0) and stats[f"curriculum/{lv}/q"] == 1.0
    # the recorded rewards are used once: the next feed without rewards is refused by the objective
    feed.draw(3)
    with pytest.raises(ValueError, match="task reward"):
        feed.feed(rows, np.zeros(rows.size))
    feed.record_rewards([1.0])
    with pytest.raises(ValueError, match="1 recorded rewards for 6 rollouts"):
        feed.feed(rows, np.zeros(rows.size))


def test_difficulty_falls_back_to_the_records_when_it_is_no_arm_field():
    problems = [{"task": t, "level": lv} for t in ("a", "b") for lv in (1, 2, 3)]
    policy = build("random", [(p["task"],) for p in problems], "curriculum.arm_fields=[task]")
    feed = CurriculumFeed(policy, problems)
    idx = feed.draw(4)
    assert feed.pop_stats()["curriculum/sampled_level_mean"] == pytest.approx(
        np.mean([problems[i]["level"] for i in idx])
    )
    # no numeric difficulty anywhere: no key
    feed = CurriculumFeed(policy, problems, difficulty_field="task")
    feed.draw(2)
    assert "curriculum/sampled_level_mean" not in feed.pop_stats()


def test_feed_module_imports_no_engine():
    import subprocess
    import sys

    engines = "('torch', 'trl', 'verl', 'transformers')"
    code = f"import sys, sec.curriculum; print(sorted(m for m in {engines} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_feed_reports_the_curriculum_overhead_of_draw_and_update_not_the_engine():
    import time

    problems = [{"level": lv} for lv in (1, 1, 2, 2, 3, 3)]
    policy = build("sec", [(p["level"],) for p in problems])
    sample, update = policy.sample, policy.update

    def slow_sample(n):
        time.sleep(0.03)
        return sample(n)

    def slow_update(*args):
        time.sleep(0.02)
        return update(*args)

    policy.sample, policy.update = slow_sample, slow_update
    feed = CurriculumFeed(policy, problems)
    idx = feed.draw(2)
    time.sleep(0.3)  # the engine's rollouts and optimizer step: not the curriculum's
    stats = feed.feed(np.repeat(idx, 2), np.ones(4))
    assert 50.0 <= stats["curriculum/overhead_ms"] < 300.0
    # the next step counts its own draw only
    idx = feed.draw(2)
    policy.sample = sample
    assert 20.0 <= feed.feed(np.repeat(idx, 2), np.ones(4))["curriculum/overhead_ms"] < 300.0
