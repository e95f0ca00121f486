"""Curricula built from the real ``conf/curriculum/*.yaml`` (composed by Hydra) for the tests."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from sec.curriculum import CurriculumPolicy, build_curriculum

CONF = Path(__file__).resolve().parent.parent / "conf"


def curriculum_names() -> list[str]:
    """Every curriculum config (``conf/curriculum/*.yaml``), discovered."""
    return sorted(p.stem for p in (CONF / "curriculum").glob("*.yaml"))


@lru_cache(maxsize=256)
def _composed(name: str, overrides: tuple[str, ...]) -> str:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"curriculum={name}", *overrides])
    return OmegaConf.to_yaml(OmegaConf.create(OmegaConf.to_container(cfg.curriculum, resolve=True)))


def composed(name: str, *overrides: str) -> dict[str, Any]:
    """The resolved ``curriculum`` node of ``config`` with ``curriculum=<name>`` and overrides."""
    return OmegaConf.to_container(OmegaConf.create(_composed(name, tuple(overrides))))  # type: ignore[return-value]


def build(
    name: str, arms: Sequence[tuple], *overrides: str, total_steps: int = 10, seed: int = 0, **values: Any
) -> CurriculumPolicy:
    """``build_curriculum`` of a composed config; ``values`` become ``curriculum.<key>=<value>``."""
    extra = [f"curriculum.{k}={_text(v)}" for k, v in values.items()]
    return build_curriculum(composed(name, *overrides, *extra), arms, total_steps=total_steps, seed=seed)


def two_field_arms(arms: Sequence[tuple], tasks: Sequence[str] = ("countdown", "zebra")) -> list[tuple]:
    """``(task, level)`` arms: every task with the given level arms."""
    return [(t, *a) for t in tasks for a in arms]


def _text(v: Any) -> str:
    return "null" if v is None else str(v).lower() if isinstance(v, bool) else str(v)
