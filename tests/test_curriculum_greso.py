"""GRESO around SEC: recorded batches through our wrapper and through a transcription of the
released rule (Infini-AI-Lab/GRESO verl/trainer/ttis/presampling_selector.py L102-147 and
verl/trainer/ppo/ray_trainer.py L298-299, L1201-1219), draw for draw with a shared RNG stream."""

from __future__ import annotations

import json

import numpy as np
import pytest
from curricula import build, composed
from replay import ARMS, rollouts

from sec.curriculum import build_curriculum

STEPS, SLOTS = 60, 6
#: polarised levels and groups of 16, so that zero-variance runs grow long (p^k reaches the floor)
#: and a group of 15 correct + 1 formatted (mean 0.94) is not "easy"
POLAR = {"group": 16, "p_correct": {1: 0.995, 2: 0.5, 3: 0.005}}


class GresoRef:
    """The released DataProfiler (reward trace per problem: the mean reward of each visit's
    group) and the trainer's adaptation of p_easy / p_hard."""

    def __init__(self) -> None:
        self.trace: dict[int, list[float]] = {}
        self.p_easy = self.p_hard = 0.5
        self.targeted_easy, self.targeted_hard = 0.25 / 3, 0.25 * 2 / 3

    def easy_skip_probability(self, i: int) -> float:  # easy_probabilistic_skip, L102-117
        count = 0
        for r in reversed(self.trace.get(i, [])):
            if r < 0.98:
                break
            count += 1
        return 1 - max(self.p_easy**count, 0.01)

    def hard_skip_probability(self, i: int) -> float:  # hard_probabilistic_skip, L124-142
        trace = self.trace.get(i, [])
        if not trace or trace[-1] > 0.11:
            return 0.0
        count = 0
        for r in reversed(trace):
            if r > 0.11:
                break
            count += 1
        return 1 - max(self.p_hard**count, 0.01)

    def skipped(self, i: int, u: float) -> bool:
        """filter_examples_all_probabilistic: easy test, then hard test (one uniform for both)."""
        return u < self.easy_skip_probability(i) or u < self.hard_skip_probability(i)

    def add(self, rows: np.ndarray, rewards: np.ndarray) -> None:
        """add_reward_list with each group's mean reward, then the adaptation of L1201-1219."""
        groups = {}
        for r, x in zip(rows, rewards, strict=True):
            groups.setdefault(int(r), []).append(float(x))
        means = {i: float(np.mean(v)) for i, v in groups.items()}
        for i, m in means.items():
            self.trace.setdefault(i, []).append(m)
        easy_ratio = np.mean([m >= 0.98 for m in means.values()])  # all correct
        # documented deviation: the release counts groups whose rewards are all 0.1 (format only)
        hard_ratio = np.mean([m <= 0.11 for m in means.values()])
        self.p_hard = (
            max(self.p_hard - 0.01, 0.05) if hard_ratio >= self.targeted_hard else min(self.p_hard + 0.01, 0.95)
        )
        self.p_easy = (
            max(self.p_easy - 0.01, 0.05) if easy_ratio >= self.targeted_easy else min(self.p_easy + 0.01, 0.95)
        )


def test_sec_greso_replays_the_released_filter_draw_for_draw():
    ours = build("sec_greso", ARMS, seed=9)
    ref, inner = GresoRef(), build("sec", ARMS, seed=9)  # the wrapped curriculum, fed alike
    total_skipped, peak = 0, 0.0
    for step in range(STEPS):
        batch, need = [], SLOTS
        for _ in range(100):  # max_rounds
            proposed = inner._sample(need)
            u = inner.rng.random(proposed.size)
            kept = [int(i) for i, x in zip(proposed, u, strict=True) if not ref.skipped(int(i), float(x))]
            batch += kept
            need -= len(kept)
            if need == 0:
                break
        drawn = ours.sample(SLOTS)
        assert drawn.tolist() == batch, f"step {step}"
        inner._commit(drawn)
        total_skipped += ours.skipped
        want = [max(ref.easy_skip_probability(i), ref.hard_skip_probability(i)) for i in range(len(ARMS))]
        skip = ours.skip_probability(np.arange(len(ARMS)))
        np.testing.assert_allclose(skip, want, rtol=1e-12, atol=1e-15)
        peak = max(peak, float(skip.max()))
        rows, adv, rewards = rollouts(drawn, step, **POLAR)
        ours.update(rows, np.abs(adv), rewards)
        inner.update(rows, np.abs(adv), rewards)
        ref.add(rows, rewards)
        assert (ours.p_easy, ours.p_hard) == pytest.approx((ref.p_easy, ref.p_hard), abs=1e-12)
        np.testing.assert_array_equal(ours.inner.q, inner.q)
    assert total_skipped > 0 and ours.stats()["curriculum/greso_skipped"] == ours.skipped
    assert peak > 0.98  # some run got near the keep floor (p^k < 0.02)


def test_greso_state_round_trips_and_wraps_any_curriculum():
    cfg = composed("sec_greso")
    a = build_curriculum(cfg, ARMS, total_steps=8, seed=1)
    for step in range(5):
        rows, adv, rewards = rollouts(a.sample(SLOTS), step)
        a.update(rows, np.abs(adv), rewards)
    b = build_curriculum(cfg, ARMS, total_steps=8, seed=2)
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    assert b.sample(SLOTS).tolist() == a.sample(SLOTS).tolist() and b.stats() == a.stats()
    # another inner curriculum: random, by overriding the inner config's target and keys
    rnd = {**{k: v for k, v in cfg.items() if k != "inner"}, "inner": {**composed("random"), "_partial_": True}}
    policy = build_curriculum(rnd, ARMS, total_steps=8, seed=0)
    assert type(policy.inner).__name__ == "RandomCurriculum" and policy.sample(SLOTS).size == SLOTS
    with pytest.raises(ValueError, match="differ from the inner"):
        build_curriculum({**cfg, "arm_fields": ["task", "level"]}, [("a", *x) for x in ARMS], total_steps=8, seed=0)
