"""The curriculum policy interface shared by every curriculum.

A curriculum is built from the *arms* of the training set: one arm per category, where a
category is the tuple of some record fields, e.g. ``(level,)`` or ``(task, level)``
(SEC.md §1, "one arm per category"). Engines never see arms: they ask for ``sample(n)``
problem indices and report back, for every rollout row, which problem it came from, the
token-mean absolute advantage of that rollout and its task reward (``update``).

Arms are named one way in the API: as tuples (``policy.arms``, the keys of ``probs()``,
``snapshot()`` and of ``update``'s return value). Their text name (:func:`arm_name`) appears only
in metric keys (``stats()``).

No engine (torch, TRL, verl) is imported here: inputs are plain sequences / numpy arrays.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np

Arm = tuple[Hashable, ...]


def arm_name(arm: Arm) -> str:
    """Stable text name of an arm for metric keys, e.g. ``(2,)`` -> ``"2"``,
    ``("zebra", 3)`` -> ``"zebra-3"``."""
    return "-".join(str(a) for a in arm)


class ArmStats(NamedTuple):
    """One arm in :meth:`CurriculumPolicy.snapshot`: its value (None for policies without
    values), the probability that the next batch slot draws it, and the slots drawn so far."""

    q: float | None
    prob: float
    count: int


@dataclass(frozen=True)
class Batch:
    """One step's rollouts as :meth:`CurriculumPolicy.update` hands them to a policy (validated).

    Attributes:
        problems: training-set index of the problem of every rollout row, int64 (R,).
        arms: arm index (position in ``policy.arms``) of every row, int64 (R,).
        abs_adv: token-mean |advantage| of every row, float64 (R,).
        rewards: task reward of every row, float64 (R,), or None when the engine gave none.
    """

    problems: np.ndarray
    arms: np.ndarray
    abs_adv: np.ndarray
    rewards: np.ndarray | None

    def need_rewards(self, who: str) -> np.ndarray:
        """The rewards, or a one-line ValueError naming the part that needs them."""
        if self.rewards is None:
            raise ValueError(f"curriculum: {who} needs the task reward of every rollout")
        return self.rewards


def mean_per_arm(arms: np.ndarray, values: np.ndarray, num_arms: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean of ``values`` over the rows of each arm present.

    Args:
        arms: arm index of every row, int (R,).
        values: one value per row, float (R,).
        num_arms: K.

    Returns:
        (present arm indices ascending, int64 (P,); their means, float64 (P,)).
    """
    sums = np.bincount(arms, weights=values, minlength=num_arms)
    n = np.bincount(arms, minlength=num_arms)
    present = np.flatnonzero(n)
    return present, sums[present] / n[present]


class CurriculumPolicy(ABC):
    """Chooses the training problems of every step.

    Every constructor argument comes from the ``curriculum/`` YAML (``name``, ``arm_fields``
    and the policy's own keys) or from the run (``arm_of_problem``, ``total_steps``, ``seed``);
    :func:`sec.curriculum.build_curriculum` passes both.

    Args:
        arm_of_problem: the arm (category tuple) of every training problem, length N.
        name: the config's name (``curriculum.name``), used in logs and to check states.
        arm_fields: names of the record fields that make an arm, e.g. ``("level",)``.
        total_steps: training steps of the run, >= 1 (schedules need it).
        seed: seed of the policy's own RNG (numpy ``PCG64``); the full RNG state is part of
            ``state_dict`` so a resumed run draws the same next batch.

    Raises:
        ValueError: if the training set is empty or ``total_steps < 1``.
    """

    def __init__(
        self, arm_of_problem: Sequence[Arm], *, name: str, arm_fields: Sequence[str], total_steps: int, seed: int
    ) -> None:
        if len(arm_of_problem) == 0:
            raise ValueError("curriculum: the training set is empty; there is nothing to sample")
        if int(total_steps) < 1:
            raise ValueError(f"curriculum: total_steps must be >= 1, got {total_steps}")
        self.name = str(name)
        self.arm_fields = tuple(str(f) for f in arm_fields)
        self.total_steps = int(total_steps)
        keys = [tuple(_py(x) for x in (a if isinstance(a, (tuple, list)) else (a,))) for a in arm_of_problem]
        #: the arms, sorted (numbers numerically)
        self.arms: tuple[Arm, ...] = tuple(sorted(set(keys), key=_sort_key))
        self._index = {arm: k for k, arm in enumerate(self.arms)}
        #: arm index of every problem, shape (N,), int64
        self.arm_index = np.fromiter((self._index[a] for a in keys), dtype=np.int64, count=len(keys))
        #: problem indices of every arm (ascending), list of int64 arrays
        self.members: list[np.ndarray] = [np.flatnonzero(self.arm_index == k) for k in range(len(self.arms))]
        self.rng = np.random.Generator(np.random.PCG64(seed))
        #: times each arm was drawn (one per batch slot), shape (K,)
        self.counts = np.zeros(len(self.arms), dtype=np.int64)
        self.steps = 0

    # ------------------------------------------------------------------ interface
    @property
    def num_arms(self) -> int:
        return len(self.arms)

    def arm_position(self, arm: Arm) -> int:
        """Position of ``arm`` in :attr:`arms` (KeyError for an unknown arm)."""
        return self._index[tuple(arm)]

    def sample(self, n: int) -> np.ndarray:
        """Draw the ``n`` problems of one batch (and advance the policy by one step).

        Returns:
            int64 array of shape ``(n,)``: indices into the training set.

        Raises:
            ValueError: if ``n < 1``.
        """
        if n < 1:
            raise ValueError(f"curriculum: batch size must be >= 1, got {n}")
        idx = np.asarray(self._sample(n), dtype=np.int64)
        self._commit(idx)
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
            reward_of_rows: the task reward of every rollout row, shape (R,); the parts that
                read rewards (success-rate objectives, MoPPS, GRESO, AdaRFT) need it.

        Returns:
            The curriculum reward ``r_t(c)`` of every arm present in the rows, keyed by arm
            tuple: the policy's objective; the mean of ``abs_adv_of_rows`` over the arm's rows
            (SEC.md §1) for policies without one.

        Raises:
            ValueError: on length mismatch, out-of-range indices or non-finite values.
        """
        return self._learn(self._batch(problem_of_rows, abs_adv_of_rows, reward_of_rows))

    def probs(self) -> Mapping[Arm, float]:
        """Probability that the next batch slot draws each arm, read-only ``{arm: p}``.

        Side-effect free: it changes no state (RNG included), so it previews the next draw.
        Schedules report the distribution at the middle of the next step.
        """
        return MappingProxyType(dict(zip(self.arms, self._probs().tolist(), strict=True)))

    def snapshot(self) -> Mapping[Arm, ArmStats]:
        """Read-only view ``{arm: ArmStats(q, prob, count)}`` of the policy now (side-effect free)."""
        p = self._probs().tolist()
        q = self._values()
        return MappingProxyType(
            {
                arm: ArmStats(None if q is None else float(q[k]), p[k], int(self.counts[k]))
                for k, arm in enumerate(self.arms)
            }
        )

    def stats(self) -> dict[str, float]:
        """Flat per-arm statistics for metrics.jsonl: ``curriculum/<arm>/prob`` and
        ``curriculum/<arm>/count``, plus ``/q`` for value-based policies and the policy's own
        extras (:meth:`_extra_stats`)."""
        p = self._probs()
        out: dict[str, float] = {}
        for k, arm in enumerate(self.arms):
            out[f"curriculum/{arm_name(arm)}/prob"] = float(p[k])
            out[f"curriculum/{arm_name(arm)}/count"] = int(self.counts[k])
        q = self._values()
        if q is not None:
            for k, arm in enumerate(self.arms):
                out[f"curriculum/{arm_name(arm)}/q"] = float(q[k])
        out.update(self._extra_stats())
        return out

    def difficulty(self, problems: Sequence[int] | np.ndarray, field: str = "level") -> float | None:
        """Mean of the difficulty field over the given problems (e.g. the sampled batch), or
        None when ``field`` is not an arm field or not numeric."""
        value_of_arm = self.numeric_field(field)
        if value_of_arm is None:
            return None
        idx = np.asarray(problems, dtype=np.int64)
        return float(value_of_arm[self.arm_index[idx]].mean()) if idx.size else None

    def numeric_field(self, field: str) -> np.ndarray | None:
        """Value of arm field ``field`` for every arm, float64 (K,), or None when it is not an
        arm field or not numeric."""
        if field not in self.arm_fields:
            return None
        pos = self.arm_fields.index(field)
        try:
            return np.array([float(a[pos]) for a in self.arms])
        except (TypeError, ValueError):
            return None

    def stages(self, field: str) -> tuple[np.ndarray, list[np.ndarray]]:
        """Arms grouped by the numeric arm field ``field`` (a difficulty), easiest first.

        Returns:
            (the distinct values ascending, float64 (S,); the arm indices of each, list of S
            int64 arrays).

        Raises:
            ValueError: one line, when ``field`` is no numeric arm field (e.g. ``arm_fields:
                [task]``): schedules over difficulty cannot apply.
        """
        value_of_arm = self.numeric_field(field)
        if value_of_arm is None:
            raise ValueError(
                f"curriculum={self.name} orders arms by the numeric arm field {field!r}, "
                f"which arm_fields {list(self.arm_fields)} do not provide"
            )
        values = np.unique(value_of_arm)
        return values, [np.flatnonzero(value_of_arm == v) for v in values]

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
            ValueError: if the state belongs to another policy or another set of arms, or lacks a
                part this policy needs (a state of another version).
        """
        if state.get("name") != self.name:
            raise ValueError(f"curriculum state is for {state.get('name')!r}, this policy is {self.name!r}")
        arms = tuple(tuple(a) for a in state["arms"])
        if arms != self.arms:
            raise ValueError(f"curriculum state has arms {list(arms)}, the training set has {list(self.arms)}")
        try:
            self.rng.bit_generator.state = state["rng"]
            self.counts = np.asarray(state["counts"], dtype=np.int64)
            self.steps = int(state["steps"])
            self._load_state(state)
        except KeyError as e:
            missing = e.args[0]
            raise ValueError(f"curriculum state of {self.name!r} lacks {missing!r}: another version's state") from e

    # ------------------------------------------------------------------ for subclasses
    @abstractmethod
    def _sample(self, n: int) -> np.ndarray:
        """``n`` problem indices drawn for the current step (no bookkeeping: see ``_commit``)."""

    @abstractmethod
    def _probs(self) -> np.ndarray:
        """Probability of each arm for the next slot, float64 (K,); must not change state."""

    def _commit(self, idx: np.ndarray) -> None:
        """Book a drawn batch: counts per arm and the step counter."""
        np.add.at(self.counts, self.arm_index[idx], 1)
        self.steps += 1

    def _learn(self, batch: Batch) -> dict[Arm, float]:
        """Policies without a learning signal report each arm's mean |A| and change nothing."""
        present, means = mean_per_arm(batch.arms, batch.abs_adv, self.num_arms)
        return {self.arms[k]: float(v) for k, v in zip(present, means, strict=True)}

    def _values(self) -> np.ndarray | None:
        """Per-arm values logged as ``/q`` (None: the policy has none)."""
        return None

    def _extra_stats(self) -> dict[str, float]:
        """Policy-level metrics beyond the per-arm ones (e.g. a target difficulty)."""
        return {}

    def _state(self) -> dict[str, Any]:
        return {}

    def _load_state(self, state: Mapping[str, Any]) -> None:
        """Nothing beyond the base state by default."""

    def _batch(
        self,
        problem_of_rows: Sequence[int] | np.ndarray,
        abs_adv_of_rows: Sequence[float] | np.ndarray,
        reward_of_rows: Sequence[float] | np.ndarray | None,
    ) -> Batch:
        rows = np.asarray(problem_of_rows, dtype=np.int64).reshape(-1)
        vals = np.asarray(abs_adv_of_rows, dtype=np.float64).reshape(-1)
        if rows.shape != vals.shape:
            raise ValueError(f"curriculum update(): {rows.size} problem indices but {vals.size} advantages")
        if rows.size and (rows.min() < 0 or rows.max() >= self.arm_index.size):
            raise ValueError(f"curriculum update(): problem index out of range [0, {self.arm_index.size})")
        if not np.all(np.isfinite(vals)):
            raise ValueError("curriculum update(): advantages contain NaN or inf")
        rewards = None
        if reward_of_rows is not None:
            rewards = np.asarray(reward_of_rows, dtype=np.float64).reshape(-1)
            if rewards.shape != rows.shape:
                raise ValueError(f"curriculum update(): {rows.size} problem indices but {rewards.size} rewards")
            if not np.all(np.isfinite(rewards)):
                raise ValueError("curriculum update(): rewards contain NaN or inf")
        return Batch(rows, self.arm_index[rows], vals, rewards)


def _py(x: Any) -> Hashable:
    """numpy scalars -> Python scalars, so arms are JSON-serialisable and compare equal."""
    return x.item() if isinstance(x, np.generic) else x


def _sort_key(arm: Arm) -> tuple:
    # numbers sort numerically, everything else as text; mixed types never compare directly
    return tuple(
        (0, float(x), "") if isinstance(x, (int, float, np.integer, np.floating)) else (1, 0.0, str(x)) for x in arm
    )
