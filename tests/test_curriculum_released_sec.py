"""The released SEC code's details as options of our parts, replayed against a transcription of
that code (sec/verl/verl/utils/auto_curriculum/{priority,dataloader}.py as vendored in
Vincent-La/cofa at 8b685cb): the signed progress objective with the EMA over all arms, greedy
exploration over the non-best arms only, and drawing within an arm from a shuffled queue."""

from __future__ import annotations

import random

import numpy as np
import pytest
from curricula import build
from replay import ARMS, LEVELS, rollouts, rows_by_arm

STEPS, SLOTS = 20, 6


class ReleasedBandit:
    """BanditPriority (priority.py L49-187): q_values, progress objective, update_q_values."""

    def __init__(self, lr: float, temperature: float) -> None:
        self.lr, self.temperature = lr, temperature
        self.q_values = np.zeros(3)
        self.group_to_last_reward = {g: 0 for g in (1, 2, 3)}

    def get_probs(self) -> np.ndarray:  # 'boltzmann', L100-101
        return np.exp(self.q_values / self.temperature) / np.sum(np.exp(self.q_values / self.temperature))

    def update_progress(self, group_to_reward: dict[int, list[float]]) -> None:  # L159-187
        group_to_obj, means = {}, {}
        for group, last in self.group_to_last_reward.items():
            means[group] = np.mean(group_to_reward[group]) if group in group_to_reward else last
            group_to_obj[group] = means[group] - self.group_to_last_reward[group]
            self.group_to_last_reward[group] = means[group]
        new_qs = np.zeros(3)
        for group, obj in group_to_obj.items():
            new_qs[group - 1] = obj
        self.q_values = (1 - self.lr) * self.q_values + self.lr * new_qs


def test_signed_progress_with_the_ema_over_all_arms_replays_the_released_bandit():
    ours = build(
        "sec_progress",
        ARMS,
        "curriculum.objective.signed=true",
        "curriculum.objective.baseline=0.0",
        update_rule="all",
        alpha=0.5,
        tau=0.7,
        seed=1,
    )
    ref = ReleasedBandit(lr=0.5, temperature=0.7)
    went_negative = False
    for step in range(STEPS):
        np.testing.assert_allclose(list(ours.probs().values()), ref.get_probs(), rtol=1e-12)
        drawn = ours.sample(SLOTS)
        rows, adv, rewards = rollouts(drawn, step)
        ours.update(rows, np.abs(adv), rewards)
        ref.update_progress(rows_by_arm(rows, rewards))
        np.testing.assert_allclose(ours.q, ref.q_values, rtol=1e-12, atol=1e-15)
        went_negative |= bool((ours.q < 0).any())
    assert went_negative  # signed: a falling reward lowers an arm's value


def test_our_default_progress_is_the_absolute_change_from_the_first_update():
    b = build("sec_progress", ARMS, alpha=1.0)
    assert b.update([0, 6], [0.0, 0.0], [1.0, 0.1]) == {(1,): 0.0, (2,): 0.0}
    r = b.update([0, 6], [0.0, 0.0], [0.0, 0.1])
    assert r == {(1,): 1.0, (2,): 0.0}  # |0 - 1|; the released signed rule gives -1


def released_greedy(q_values: np.ndarray, epsilon: float, num_samples: int, rnd: random.Random) -> list[int]:
    """BanditPriority.sample_arms('greedy'), priority.py L120-131, verbatim but for the RNG."""
    arms = []
    for _ in range(num_samples):
        if rnd.random() < epsilon:
            max_arm = np.argmax(q_values)
            arm_to_sample = rnd.randint(0, len(q_values) - 1)
            while arm_to_sample == max_arm:
                arm_to_sample = rnd.randint(0, len(q_values) - 1)
            arms.append(arm_to_sample)
        else:
            arms.append(np.argmax(q_values))
    return arms


@pytest.mark.parametrize("q", [[0.1, 0.5, 0.2], [0.5, 0.5, 0.2]])
def test_greedy_exploration_over_the_other_arms_matches_the_released_sampler(q):
    b = build("sec_egreedy", ARMS, "curriculum.selection.explore=others", "curriculum.selection.epsilon=0.3")
    b.q[:] = q
    best = int(np.argmax(q))  # ties: the first, as np.argmax in the release
    want = np.where(np.arange(3) == best, 0.7, 0.15)
    np.testing.assert_allclose(list(b.probs().values()), want)
    n = 60_000
    ref = np.bincount(released_greedy(np.array(q), 0.3, n, random.Random(0)), minlength=3) / n
    ours = np.bincount(LEVELS[b.sample(n)] - 1, minlength=3) / n
    np.testing.assert_allclose(ref, want, atol=0.01)
    np.testing.assert_allclose(ours, want, atol=0.01)
    one = build("sec_egreedy", [(1,)] * 3, "curriculum.selection.explore=others")
    assert list(one.probs().values()) == [1.0]  # a single arm: nothing else to explore


def released_queue_draws(arm_sequence: list[list[int]], arm_to_idx: dict[int, list[int]], seed: int) -> list[int]:
    """BanditDataloader (dataloader.py L183-256), perpetual: shuffled lists per arm, pop(0); when
    an arm holds less than a batch, every arm is refilled (leftovers first, then a reshuffle)."""
    rnd = random.Random(seed)
    remaining = {a: list(idx) for a, idx in arm_to_idx.items()}
    for idx in remaining.values():
        rnd.shuffle(idx)
    out = []
    for arms in arm_sequence:
        if any(len(r) < len(arms) for r in remaining.values()):
            fresh = {a: list(idx) for a, idx in arm_to_idx.items()}
            for idx in fresh.values():
                rnd.shuffle(idx)
            remaining = {a: remaining[a] + fresh[a] for a in remaining}
        out += [remaining[a].pop(0) for a in arms]
    return out


def passes_are_permutations(draws: list[int]) -> bool:
    """Per arm, every consecutive run of |arm| draws holds each of its problems once."""
    for level in (1, 2, 3):
        seq = [i for i in draws if LEVELS[i] == level]
        size = int((level == LEVELS).sum())
        for start in range(0, len(seq) - size + 1, size):
            if sorted(seq[start : start + size]) != sorted(np.flatnonzero(level == LEVELS).tolist()):
                return False
    return True


def test_queue_draws_each_arm_without_replacement_like_the_released_loader():
    b = build("sec", ARMS, "curriculum/within=queue", seed=4)
    ours, arm_sequence = [], []
    for _ in range(40):
        drawn = b.sample(5)
        ours += drawn.tolist()
        arm_sequence.append([int(LEVELS[i]) for i in drawn])
    arm_to_idx = {lv: np.flatnonzero(lv == LEVELS).tolist() for lv in (1, 2, 3)}
    ref = released_queue_draws(arm_sequence, arm_to_idx, seed=4)
    assert [LEVELS[i] for i in ref] == [LEVELS[i] for i in ours]  # same arms, drawn from queues
    assert passes_are_permutations(ref) and passes_are_permutations(ours)
    uniform = build("sec", ARMS, seed=4)
    assert not passes_are_permutations([i for _ in range(40) for i in uniform.sample(5).tolist()])
