"""The curriculum policy interface shared by every curriculum (SEC bandit and baselines).

A curriculum is built from the *arms* of the training set: one arm per category, where a
category is the tuple of some record fields, e.g. ``(level,)`` or ``(task, level)``
(SEC.md §1, "one arm per category"). Engines never see arms: they ask for ``sample(n)``
problem indices and report back, for every rollout row, which problem it came from and the
token-mean absolute advantage of that rollout (``update``).

No engine (torch, TRL, verl) is imported here: inputs are plain sequences / numpy arrays.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np

Arm = tuple[Hashable, ...]


def arm_name(arm: Arm) -> str:
    """Stable text name of an arm for logs and metric keys, e.g. ``(2,)`` -> ``"2"``,
    ``("zebra", 3)`` -> ``"zebra-3"``."""
    return "-".join(str(a) for a in arm)


class CurriculumPolicy(ABC):
    """Chooses the training problems of every step.

    Args:
        arm_of_problem: the arm (category tuple) of every training problem, length N (the
            size of the training set). Problem ``i`` of the training set has arm
            ``arm_of_problem[i]``.
        arm_fields: names of the record fields that make an arm, e.g. ``("level",)``; used to
            find the difficulty field for logs and ordered schedules.
        seed: seed of the policy's own RNG (numpy ``PCG64``); the full RNG state is part of
            ``state_dict`` so a resumed run draws the same next batch.

    Raises:
        ValueError: if the training set is empty.
    """

    #: Short name used in configs and logs.
    name: str = "base"

    def __init__(self, arm_of_problem: Sequence[Arm], arm_fields: Sequence[str], seed: int = 0) -> None:
        if len(arm_of_problem) == 0:
            raise ValueError("curriculum: the training set is empty; there is nothing to sample")
        self.arm_fields = tuple(arm_fields)
        keys = [tuple(_py(x) for x in (a if isinstance(a, (tuple, list)) else (a,))) for a in arm_of_problem]
        self.arms: list[Arm] = sorted(set(keys), key=_sort_key)
        index = {arm: k for k, arm in enumerate(self.arms)}
        #: arm index of every problem, shape (N,), int64
        self.arm_index = np.fromiter((index[a] for a in keys), dtype=np.int64, count=len(keys))
        #: problem indices of every arm (ascending), list of int64 arrays
        self.members: list[np.ndarray] = [np.flatnonzero(self.arm_index == k) for k in range(len(self.arms))]
        # the same, flattened, for vectorised draws: arm k's problems are
        # _flat[_start[k] : _start[k] + _size[k]]
        self._flat = np.concatenate(self.members)
        self._size = np.array([m.size for m in self.members], dtype=np.int64)
        self._start = np.concatenate([[0], np.cumsum(self._size)[:-1]]).astype(np.int64)
        self.rng = np.random.Generator(np.random.PCG64(seed))
        #: times each arm was drawn (one per batch slot), shape (K,)
        self.counts = np.zeros(len(self.arms), dtype=np.int64)
        self.steps = 0

    # ------------------------------------------------------------------ interface
    @property
    def num_arms(self) -> int:
        return len(self.arms)

    def sample(self, n: int) -> np.ndarray:
        """Draw the ``n`` problems of one batch.

        Returns:
            int64 array of shape ``(n,)``: indices into the training set.

        Raises:
            ValueError: if ``n < 1``.
        """
        if n < 1:
            raise ValueError(f"curriculum: batch size must be >= 1, got {n}")
        idx = np.asarray(self._sample(n), dtype=np.int64)
        np.add.at(self.counts, self.arm_index[idx], 1)
        self.steps += 1
        return idx

    def update(
        self,
        problem_of_rows: Sequence[int] | np.ndarray,
        abs_adv_of_rows: Sequence[float] | np.ndarray,
        reward_of_rows: Sequence[float] | np.ndarray | None = None,
    ) -> dict[Arm, float]:
        """Feed back one step's learning signal.

        Args:
            problem_of_rows: training-set index of the problem of every rollout row, shape (R,).
            abs_adv_of_rows: token-mean absolute advantage ``(1/T_j) sum_t |A_{t,j}|`` of every
                rollout row, shape (R,), dimensionless (advantages are reward-normalised).
            reward_of_rows: the task reward of every rollout row, shape (R,); only objectives
                other than the paper's |A| read it (see :class:`sec.curriculum.SECBandit`).

        Returns:
            The curriculum reward ``r_t(c)`` of every arm present in the rows (SEC.md §1):
            the mean of ``abs_adv_of_rows`` over the rows of that arm. With the same number
            of rollouts per problem (a GRPO/RLOO group) this equals the mean over the arm's
            problems of the mean over their rollouts, the paper's formula.

        Raises:
            ValueError: on length mismatch, out-of-range indices or non-finite values.
        """
        rewards = self._objective(problem_of_rows, abs_adv_of_rows, reward_of_rows)
        self._update(rewards)
        return rewards

    def _objective(
        self,
        problem_of_rows: Sequence[int] | np.ndarray,
        abs_adv_of_rows: Sequence[float] | np.ndarray,
        reward_of_rows: Sequence[float] | np.ndarray | None,
    ) -> dict[Arm, float]:
        """The curriculum reward per arm; the paper's mean |A| unless a policy says otherwise."""
        return self.arm_rewards(problem_of_rows, abs_adv_of_rows)

    def arm_rewards(
        self, problem_of_rows: Sequence[int] | np.ndarray, abs_adv_of_rows: Sequence[float] | np.ndarray
    ) -> dict[Arm, float]:
        """Per-arm curriculum reward ``r_t(c)`` (see :meth:`update`) without changing state."""
        rows = np.asarray(problem_of_rows, dtype=np.int64).reshape(-1)
        vals = np.asarray(abs_adv_of_rows, dtype=np.float64).reshape(-1)
        if rows.shape != vals.shape:
            raise ValueError(f"curriculum.update: {rows.size} problem indices but {vals.size} advantages")
        if rows.size and (rows.min() < 0 or rows.max() >= self.arm_index.size):
            raise ValueError(f"curriculum.update: problem index out of range [0, {self.arm_index.size})")
        if not np.all(np.isfinite(vals)):
            raise ValueError("curriculum.update: advantages contain NaN or inf")
        arms = self.arm_index[rows]
        sums = np.bincount(arms, weights=vals, minlength=self.num_arms)
        n = np.bincount(arms, minlength=self.num_arms)
        return {self.arms[k]: float(sums[k] / n[k]) for k in np.flatnonzero(n)}

    def probs(self) -> np.ndarray:
        """Probability of drawing each arm for the next batch slot, shape (K,). Baselines that
        follow a schedule report the distribution of their next draw."""
        return self._probs()

    def stats(self) -> dict[str, float]:
        """Flat per-arm statistics for metrics.jsonl: ``curriculum/<arm>/prob`` and
        ``curriculum/<arm>/count`` (plus ``/q`` for value-based policies)."""
        p = self.probs()
        out: dict[str, float] = {}
        for k, arm in enumerate(self.arms):
            out[f"curriculum/{arm_name(arm)}/prob"] = float(p[k])
            out[f"curriculum/{arm_name(arm)}/count"] = int(self.counts[k])
        return out

    def difficulty(self, problems: Sequence[int] | np.ndarray, field: str = "level") -> float | None:
        """Mean of the difficulty field over the given problems (e.g. the sampled batch), or
        None when ``field`` is not an arm field or not numeric."""
        if field not in self.arm_fields:
            return None
        pos = self.arm_fields.index(field)
        try:
            value_of_arm = np.array([float(a[pos]) for a in self.arms])
        except (TypeError, ValueError):
            return None
        idx = np.asarray(problems, dtype=np.int64)
        return float(value_of_arm[self.arm_index[idx]].mean()) if idx.size else None

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state: RNG, counts, step and the policy's own values."""
        return {
            "name": self.name,
            "arms": [list(a) for a in self.arms],
            "rng": self.rng.bit_generator.state,
            "counts": self.counts.tolist(),
            "steps": self.steps,
            **self._state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a state from :meth:`state_dict`.

        Raises:
            ValueError: if the state belongs to another policy or another set of arms.
        """
        if state.get("name") != self.name:
            raise ValueError(f"curriculum state is for {state.get('name')!r}, this policy is {self.name!r}")
        arms = [tuple(a) for a in state["arms"]]
        if arms != self.arms:
            raise ValueError(f"curriculum state has arms {arms}, the training set has {self.arms}")
        self.rng.bit_generator.state = state["rng"]
        self.counts = np.asarray(state["counts"], dtype=np.int64)
        self.steps = int(state["steps"])
        self._load_state(state)

    # ------------------------------------------------------------------ for subclasses
    @abstractmethod
    def _sample(self, n: int) -> np.ndarray: ...

    @abstractmethod
    def _probs(self) -> np.ndarray: ...

    def _update(self, rewards: Mapping[Arm, float]) -> None:
        """Baselines ignore the learning signal."""

    def _state(self) -> dict[str, Any]:
        return {}

    def _load_state(self, state: Mapping[str, Any]) -> None:
        """Nothing beyond the base state by default."""

    def _uniform_within(self, arms: np.ndarray) -> np.ndarray:
        """One problem drawn uniformly from each given arm (Algorithm 1, second draw)."""
        arms = np.asarray(arms, dtype=np.int64)
        return self._flat[self._start[arms] + self.rng.integers(0, self._size[arms])]


def _py(x: Any) -> Hashable:
    """numpy scalars -> Python scalars, so arms are JSON-serialisable and compare equal."""
    return x.item() if isinstance(x, np.generic) else x


def _sort_key(arm: Arm) -> tuple:
    # numbers sort numerically, everything else as text; mixed types never compare directly
    return tuple(
        (0, float(x), "") if isinstance(x, (int, float, np.integer, np.floating)) else (1, 0.0, str(x)) for x in arm
    )
