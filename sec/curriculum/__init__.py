"""Curriculum policies: the SEC bandit and the random / ordered / reverse baselines.

Engine-free: nothing here imports torch, TRL or verl. Every policy takes the arm of each
training problem and answers ``sample(n)`` / ``update(problem_of_rows, abs_adv_of_rows)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sec.curriculum.base import Arm, CurriculumPolicy, arm_name
from sec.curriculum.baselines import OrderedCurriculum, RandomCurriculum
from sec.curriculum.sec_bandit import OBJECTIVES, SELECTIONS, UPDATE_RULES, SECBandit, boltzmann

#: policies :func:`build_curriculum` builds (``curriculum.policy``; defaults to ``curriculum.name``)
POLICIES = ("random", "ordered", "reverse", "sec")

__all__ = [
    "OBJECTIVES",
    "POLICIES",
    "SELECTIONS",
    "UPDATE_RULES",
    "Arm",
    "CurriculumPolicy",
    "OrderedCurriculum",
    "RandomCurriculum",
    "SECBandit",
    "arm_name",
    "arms_of_records",
    "boltzmann",
    "build_curriculum",
]


def arms_of_records(records: Sequence[Mapping[str, Any]], arm_fields: Sequence[str]) -> list[Arm]:
    """The arm (tuple of ``arm_fields`` values) of every record.

    Raises:
        KeyError: naming the first missing field, e.g. ``arm_fields=[task, level]`` on records
            without a ``task`` field.
    """
    out = []
    for r in records:
        try:
            out.append(tuple(r[f] for f in arm_fields))
        except KeyError as e:
            raise KeyError(f"curriculum.arm_fields names {e.args[0]!r}, which the problem records lack") from None
    return out


def build_curriculum(
    cfg: Mapping[str, Any], arm_of_problem: Sequence[Arm], *, total_steps: int, seed: int
) -> CurriculumPolicy:
    """Build the policy that ``cfg.policy`` (else ``cfg.name``) names from a ``curriculum/``
    config.

    Args:
        cfg: the composed ``curriculum`` config (``name``, optional ``policy``, ``arm_fields``
            and the policy's parameters, e.g. ``alpha``, ``tau``, ``update``, ``selection``,
            ``objective`` for ``sec``).
        arm_of_problem: arm of every training problem, length N.
        total_steps: training steps of the run (the ordered schedules need it).
        seed: seed of the policy's RNG.

    Raises:
        ValueError: for an unknown curriculum name (one line listing the known ones) or bad
            parameters.
    """
    name = cfg.get("policy") or cfg["name"]
    fields = list(cfg["arm_fields"])
    if name == "sec":
        return SECBandit(
            arm_of_problem,
            fields,
            alpha=float(cfg["alpha"]),
            tau=float(cfg["tau"]),
            update=str(cfg.get("update", "sampled")),
            q_init=float(cfg.get("q_init", 0.0)),
            selection=str(cfg.get("selection", "boltzmann")),
            objective=str(cfg.get("objective", "abs_adv")),
            ucb_c=float(cfg.get("ucb_c", 1.0)),
            thompson_sigma=float(cfg.get("thompson_sigma", 0.5)),
            epsilon=float(cfg.get("epsilon", 0.1)),
            success_threshold=float(cfg.get("success_threshold", 1.0)),
            seed=seed,
        )
    if name == "random":
        return RandomCurriculum(arm_of_problem, fields, seed=seed)
    if name in ("ordered", "reverse"):
        return OrderedCurriculum(
            arm_of_problem,
            fields,
            total_steps=total_steps,
            order_field=str(cfg.get("order_field", "level")),
            reverse=name == "reverse",
            seed=seed,
        )
    raise ValueError(f"unknown curriculum {name!r}; expected one of {', '.join(POLICIES)}")
