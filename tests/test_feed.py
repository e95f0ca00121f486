"""The engine-side glue: token-mean |A| and the draw/feed cycle."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sec.backends.feed import CurriculumFeed, token_mean_abs
from sec.curriculum import SECBandit


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
    policy = SECBandit([(p["level"],) for p in problems], ["level"], alpha=0.5, tau=1.0, seed=0)
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
