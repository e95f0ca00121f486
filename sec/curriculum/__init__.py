"""Curriculum policies: the SEC bandit and its parts, the peers' curricula (DUMP, MoPPS, GRESO,
E2H, AdaRFT, learnability) and the baselines.

Engine-free: nothing here imports torch, TRL or verl. Every policy takes the arm of each
training problem and answers ``sample(n)`` / ``update(problem_of_rows, abs_adv_of_rows,
reward_of_rows)``; :class:`CurriculumFeed` connects one to an engine.

Every ``conf/curriculum/*.yaml`` names its class with ``_target_`` (and its parts with nested
``_target_``); :func:`build_curriculum` instantiates it with the run's facts. Adding a
curriculum is one class (anywhere importable) plus its YAML.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from sec.curriculum.adarft import AdaRFT
from sec.curriculum.bandit import ArmBandit, SECBandit
from sec.curriculum.base import Arm, ArmStats, Batch, CurriculumPolicy, arm_name, mean_per_arm
from sec.curriculum.baselines import OrderedCurriculum, RandomCurriculum
from sec.curriculum.dump import DUMP
from sec.curriculum.feed import CurriculumFeed, token_mean_abs
from sec.curriculum.greso import GRESO
from sec.curriculum.mopps import MoPPS
from sec.curriculum.objectives import MeanAbsAdvantage, Objective, Progress, SuccessRate, SuccessShare
from sec.curriculum.schedules import E2H, Cosine, Gaussian, Schedule
from sec.curriculum.selection import UCB, Boltzmann, EpsilonGreedy, Learnability, Selection, Thompson, boltzmann
from sec.curriculum.within import ShuffledQueue, Uniform, Within

#: keys of a curriculum config renamed or moved since c8547f6: old -> new (the old key is
#: refused with one line naming the new one)
RENAMED_KEYS = {
    "update": "update_rule",
    "ucb_c": "selection.c",
    "thompson_sigma": "selection.sigma",
    "epsilon": "selection.epsilon",
    "success_threshold": "objective.threshold",
}
#: parts that were strings and are config groups now (``curriculum/<part>=<option>``)
PARTS = ("selection", "objective", "within", "schedule")

__all__ = [
    "DUMP",
    "E2H",
    "GRESO",
    "PARTS",
    "RENAMED_KEYS",
    "UCB",
    "AdaRFT",
    "Arm",
    "ArmBandit",
    "ArmStats",
    "Batch",
    "Boltzmann",
    "Cosine",
    "CurriculumFeed",
    "CurriculumPolicy",
    "EpsilonGreedy",
    "Gaussian",
    "Learnability",
    "MeanAbsAdvantage",
    "MoPPS",
    "Objective",
    "OrderedCurriculum",
    "Progress",
    "RandomCurriculum",
    "SECBandit",
    "Schedule",
    "Selection",
    "ShuffledQueue",
    "SuccessRate",
    "SuccessShare",
    "Thompson",
    "Uniform",
    "Within",
    "arm_name",
    "arms_of_records",
    "boltzmann",
    "build_curriculum",
    "mean_per_arm",
    "token_mean_abs",
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
    cfg: Mapping[str, Any] | DictConfig, arm_of_problem: Sequence[Arm], *, total_steps: int, seed: int
) -> CurriculumPolicy:
    """Build the policy a ``curriculum/`` config names: ``hydra.utils.instantiate`` of the
    config (its ``_target_`` class, with nested ``_target_`` parts) given the run's facts.

    Args:
        cfg: the composed ``curriculum`` config (DictConfig or its resolved container):
            ``_target_``, ``name``, ``arm_fields`` and the class's own keys.
        arm_of_problem: arm of every training problem, length N.
        total_steps: training steps of the run (schedules need it).
        seed: seed of the policy's RNG.

    Raises:
        ValueError: one line, for a config without ``_target_``, a renamed key
            (:data:`RENAMED_KEYS`), a required key missing (naming it and its config file),
            a class or part that cannot be imported, or a bad parameter (the class's own
            message).
    """
    _check_keys(cfg, "curriculum")
    if "_target_" not in cfg:
        raise ValueError(f"curriculum={cfg.get('name')} has no _target_ (the class to build; see conf/curriculum/)")
    _check_required(cfg)
    try:
        # partial: the arms go to the constructor as they are, not through OmegaConf
        factory = instantiate(cfg, _partial_=True)
    except InstantiationException as e:
        cause = e.__cause__
        raise ValueError(str(cause) if isinstance(cause, ValueError) else _one_line(e)) from None
    return factory(arm_of_problem, total_steps=int(total_steps), seed=int(seed))


#: what build_curriculum passes to every curriculum class itself (not from the config)
_GIVEN = {"arm_of_problem", "total_steps", "seed"}


def _check_required(cfg: Any) -> None:
    """Every parameter without a default of the config's class, and of each nested part's
    class, is set in the config.

    Raises:
        ValueError: one line naming the missing key(s), its path and the config file
            (``conf/curriculum/<name>.yaml`` or the part's group), e.g. a SEC config without
            ``update_rule``.
    """
    import inspect

    from hydra.utils import get_class

    node = OmegaConf.to_container(cfg, resolve=False) if isinstance(cfg, DictConfig) else dict(cfg)
    name = node.get("name", "?")

    def walk(n: Mapping[str, Any], path: str, file: str) -> None:
        if "_target_" in n:
            try:
                target = get_class(str(n["_target_"]))
            except Exception:  # an unimportable class: instantiate's own one-line error says so
                return
            params = inspect.signature(target).parameters.values()
            # the run's facts: build_curriculum passes them, and a wrapper to its partial inner curriculum
            given = _GIVEN if path == "curriculum" or n.get("_partial_") else set()
            missing = [
                p.name
                for p in params
                if p.default is inspect.Parameter.empty
                and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
                and p.name not in n
                and p.name not in given
            ]
            if missing:
                keys = ", ".join(f"{path}.{k}" for k in missing)
                raise ValueError(f"curriculum={name}: {keys} not set ({target.__name__} needs it; {file})")
        for key, value in n.items():
            if isinstance(value, Mapping):
                part = f"conf/curriculum/{key}/" if key in PARTS else file
                walk(value, f"{path}.{key}", part)

    walk(node, "curriculum", f"conf/curriculum/{name}.yaml")


def _check_keys(cfg: Any, where: str) -> None:
    """Refuse renamed keys and string parts in the config and in nested curricula (nodes with
    ``arm_fields``)."""
    node = OmegaConf.to_container(cfg, resolve=False) if isinstance(cfg, DictConfig) else cfg
    for old, new in RENAMED_KEYS.items():
        if old in node:
            raise ValueError(f"{where}.{old} was renamed {where}.{new}; write {where}.{new}={node[old]}")
    for part in PARTS:
        if isinstance(node.get(part), str):
            raise ValueError(
                f"{where}.{part} is a config group now: write {where}/{part}={node[part]} "
                f"(options: conf/curriculum/{part}/)"
            )
    for key, value in node.items():
        if isinstance(value, Mapping) and "arm_fields" in value:
            _check_keys(value, f"{where}.{key}")


def _one_line(e: Exception) -> str:
    return "curriculum: " + " ".join(str(e).split())
