"""What a run spent: rollouts, completion tokens and wall-clock seconds, per step and cumulative.

Every train record carries the fields of :meth:`Budget.end_step` (both engines; docs/league.md reads
them for compute-to-target):

* ``budget/rollouts``, ``budget/completion_tokens``, ``budget/signal_groups``: cumulative over the run
  (a resumed run continues from the last record before its checkpoint: :meth:`Budget.resume`);
  rollouts = groups rolled out x ``num_generations``, dropped groups included; a group has signal when
  its rollouts' task rewards are not all equal (:func:`sec.dynamic_sampling.signal_groups`).
* ``budget/step_rollouts``, ``budget/step_completion_tokens``, ``budget/draws`` (rollout batches this
  step: 1 without dynamic sampling), ``budget/groups_kept`` (groups the update trained on),
  ``budget/groups_dropped`` (rolled out, not trained on), ``budget/cap_hit`` (1 when dynamic sampling
  stopped at its cap before it held enough groups with signal).
* ``budget/train_s``: cumulative wall seconds of the training steps (``wall_time_s`` summed; the
  evaluations are not in it); with the per-step split ``generation_s`` (rollouts and advantages),
  ``reward_s`` (the reward function), ``curriculum/overhead_ms`` (draw and update) and ``update_s``
  (the rest of the step: forward, backward, optimizer). Seconds are wall clock
  (``time.perf_counter``) and run-varying (:data:`sec.metrics.RUN_VARYING`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CUMULATIVE", "Budget"]

#: the cumulative fields, resumed from the last train record
CUMULATIVE = ("budget/rollouts", "budget/completion_tokens", "budget/signal_groups", "budget/train_s")


@dataclass
class Budget:
    """Cumulative counters of a run plus the accumulators of the step in progress (module doc)."""

    rollouts: int = 0
    completion_tokens: int = 0
    signal_groups: int = 0
    train_s: float = 0.0
    _step: dict[str, float] = field(default_factory=dict)

    @classmethod
    def resume(cls, records: Iterable[Mapping[str, Any]]) -> Budget:
        """The counters of the last ``train`` record among ``records`` (zeros when there is none, or
        when it predates budget accounting)."""
        last = None
        for r in records:
            if r.get("kind") == "train":
                last = r
        if last is None:
            return cls()
        return cls(
            rollouts=int(last.get("budget/rollouts", 0)),
            completion_tokens=int(last.get("budget/completion_tokens", 0)),
            signal_groups=int(last.get("budget/signal_groups", 0)),
            train_s=float(last.get("budget/train_s", 0.0) or 0.0),
        )

    def add_draw(self, groups: int, num_generations: int, completion_tokens: int, signal_groups: int) -> None:
        """Count one rollout batch of ``groups`` groups of ``num_generations`` rollouts holding
        ``completion_tokens`` generated tokens (padding excluded), ``signal_groups`` of them with signal.

        Raises:
            ValueError: negative counts, or more groups with signal than groups.
        """
        if min(groups, num_generations, completion_tokens, signal_groups) < 0 or signal_groups > groups:
            raise ValueError(
                f"bad rollout batch counts: groups={groups} num_generations={num_generations} "
                f"completion_tokens={completion_tokens} signal_groups={signal_groups}"
            )
        s = self._step
        s["rollouts"] = s.get("rollouts", 0) + groups * num_generations
        s["tokens"] = s.get("tokens", 0) + completion_tokens
        s["groups"] = s.get("groups", 0) + groups
        s["signal"] = s.get("signal", 0) + signal_groups
        s["draws"] = s.get("draws", 0) + 1

    def add_seconds(self, key: str, seconds: float) -> None:
        """Add wall seconds to this step's ``key`` (``reward_s``; ``generation_s``)."""
        self._step[key] = self._step.get(key, 0.0) + float(seconds)

    def step_seconds(self, key: str) -> float:
        """This step's ``key`` seconds so far."""
        return float(self._step.get(key, 0.0))

    def end_step(self, wall_s: float, groups_kept: int, cap_hit: bool = False, curriculum_s: float = 0.0) -> dict:
        """Close the step: add it to the cumulative counters and return its record fields (module
        doc). ``update_s`` is ``wall_s`` minus the generation, reward and curriculum seconds.

        Raises:
            ValueError: more groups kept than rolled out.
        """
        s, self._step = self._step, {}
        groups = int(s.get("groups", 0))
        if groups_kept > groups:
            raise ValueError(f"{groups_kept} groups kept of {groups} rolled out")
        self.rollouts += int(s.get("rollouts", 0))
        self.completion_tokens += int(s.get("tokens", 0))
        self.signal_groups += int(s.get("signal", 0))
        self.train_s += float(wall_s)
        gen, reward = float(s.get("generation_s", 0.0)), float(s.get("reward_s", 0.0))
        out: dict[str, Any] = {
            "budget/rollouts": self.rollouts,
            "budget/completion_tokens": self.completion_tokens,
            "budget/signal_groups": self.signal_groups,
            "budget/train_s": self.train_s,
            "budget/step_rollouts": int(s.get("rollouts", 0)),
            "budget/step_completion_tokens": int(s.get("tokens", 0)),
            "budget/draws": int(s.get("draws", 0)),
            "budget/groups_kept": int(groups_kept),
            "budget/groups_dropped": groups - int(groups_kept),
            "budget/cap_hit": int(bool(cap_hit)),
        }
        if "generation_s" in s:
            out["generation_s"] = gen
        if "reward_s" in s:
            out["reward_s"] = reward
        out["update_s"] = max(0.0, float(wall_s) - gen - reward - float(curriculum_s))
        return out
