"""Dynamic sampling (DAPO, Yu et al. 2025, §3.2 "Dynamic Sampling"), engine-free.

A group whose rollouts all get the same reward has zero advantage under GRPO / RLOO and adds nothing
to the policy gradient. DAPO oversamples and filters: a step's rollout batches are drawn one after
another, groups whose task rewards are all equal are dropped, and drawing stops once the step holds
``prompts_per_step`` groups with signal (the surplus of the last batch is cut). This project caps the
batches per step (``train.max_draws_per_step``, verl's ``algorithm.filter_groups.max_num_gen_batches``);
a step that reaches the cap trains on the groups with signal it has, the rest of the step filled with
dropped groups at zero loss weight, and the record says so (``budget/cap_hit``).

The filter reads the task's correctness (the raw reward: 1 correct, 0 not), not the shaped training
reward with its format bonus: a group of wrong answers that differ only in format has no task signal
(verl's ``filter_groups.metric=acc``; NeMo-RL #2431 on filtering by a shaped reward). Every group
rolled out, dropped ones included, reaches the curriculum: SEC's reward needs their zero advantages.

Settings (``train``): ``dynamic_sampling`` (bool), ``max_draws_per_step`` (int >= 1),
``groups_per_draw`` (groups per rollout batch; null = ``prompts_per_step``, verl's ``data.gen_batch_size``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sec.errors import ConfigError

__all__ = ["DynamicSampling", "GroupSelection", "signal_groups"]


def signal_groups(rewards: Sequence[float] | np.ndarray, num_generations: int) -> np.ndarray:
    """Which groups carry signal: their rewards are not all equal.

    Args:
        rewards: shape (G * num_generations,), the rollouts' rewards, one group of
            ``num_generations`` consecutive rows per prompt.
        num_generations: rollouts per group.

    Returns:
        bool array of shape (G,).

    Raises:
        ValueError: the rewards are not whole groups.
    """
    r = np.asarray(rewards, dtype=np.float64)
    if num_generations < 1 or r.ndim != 1 or r.size % num_generations:
        raise ValueError(f"{r.size} rewards are not whole groups of {num_generations}")
    groups = r.reshape(-1, num_generations)
    return groups.max(axis=1) != groups.min(axis=1)


@dataclass(frozen=True)
class DynamicSampling:
    """The run's dynamic-sampling settings (module doc)."""

    max_draws: int
    groups_per_draw: int

    @classmethod
    def from_config(cls, train: Mapping[str, Any]) -> DynamicSampling | None:
        """The settings of ``cfg.train``, or None when ``train.dynamic_sampling`` is off.

        Raises:
            ConfigError: ``max_draws_per_step`` < 1, ``groups_per_draw`` < 1, or the two together
                fewer groups than ``prompts_per_step``.
        """
        if not bool(train.get("dynamic_sampling", False)):
            return None
        draws = int(train.get("max_draws_per_step") or 0)
        per_draw = train.get("groups_per_draw")
        per_draw = int(train.prompts_per_step if per_draw is None else per_draw)  # type: ignore[attr-defined]
        if draws < 1:
            raise ConfigError(f"train.max_draws_per_step={draws}: dynamic sampling needs at least 1 draw per step")
        if per_draw < 1:
            raise ConfigError(f"train.groups_per_draw={per_draw}: must be >= 1 (or null = train.prompts_per_step)")
        need = int(train.prompts_per_step)  # type: ignore[attr-defined]
        if draws * per_draw < need:
            raise ConfigError(
                f"train.max_draws_per_step={draws} x train.groups_per_draw={per_draw} = {draws * per_draw} groups "
                f"cannot fill a step of train.prompts_per_step={need} groups"
            )
        return cls(max_draws=draws, groups_per_draw=per_draw)


class GroupSelection:
    """The groups one step keeps, draw by draw (DAPO's rule, module doc).

    Args:
        target: groups with signal the step needs (``prompts_per_step``).
        num_generations: rollouts per group.
        max_draws: the cap on rollout batches.
    """

    def __init__(self, target: int, num_generations: int, max_draws: int) -> None:
        self.target, self.g, self.max_draws = int(target), int(num_generations), int(max_draws)
        #: per draw: (indices of the groups kept with signal, indices of groups left over)
        self.picks: list[tuple[np.ndarray, np.ndarray]] = []
        self.kept = 0

    @property
    def draws(self) -> int:
        return len(self.picks)

    @property
    def done(self) -> bool:
        """The step holds ``target`` groups with signal, or the cap is reached."""
        return self.kept >= self.target or self.draws >= self.max_draws

    @property
    def cap_hit(self) -> bool:
        return self.kept < self.target and self.draws >= self.max_draws

    def add(self, rewards: Sequence[float] | np.ndarray) -> np.ndarray:
        """Take one draw's task rewards (shape (G * num_generations,)); returns the signal mask (G,)."""
        mask = signal_groups(rewards, self.g)
        keep = np.flatnonzero(mask)[: self.target - self.kept]
        left = np.ones(mask.size, dtype=bool)
        left[keep] = False
        self.picks.append((keep, np.flatnonzero(left)))
        self.kept += keep.size
        return mask

    def plan(self) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """Per draw ``(draw, groups trained on, groups of them at zero weight)``: the kept groups, and
        when the cap was hit, filler groups of the last draws (their rows count toward the step's
        shape only) so that the step has ``target`` groups.

        Raises:
            RuntimeError: the draws hold fewer than ``target`` groups in all.
        """
        need = self.target - self.kept
        none = np.zeros(0, dtype=np.int64)
        out = [(d, keep, none) for d, (keep, _) in enumerate(self.picks)]
        for d in reversed(range(self.draws)):
            if need <= 0:
                break
            fill = self.picks[d][1][:need]
            out[d] = (d, np.sort(np.concatenate([out[d][1], fill])), fill)
            need -= fill.size
        if need > 0:
            raise RuntimeError(f"{self.draws} draws hold fewer than {self.target} groups")
        return [x for x in out if x[1].size]
