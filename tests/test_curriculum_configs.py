"""Every ``conf/curriculum/*.yaml`` (discovered): built by ``_target_``, defaults written once (in
the YAML), arms named one way, read-only side-effect-free views, renamed keys refused."""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
from curricula import CONF, build, composed, curriculum_names, two_field_arms
from hydra import compose, initialize_config_dir
from hydra.utils import get_class
from omegaconf import OmegaConf

from sec.curriculum import ArmStats, CurriculumPolicy, arm_name, arms_of_records, build_curriculum

ARMS = [(1,)] * 2 + [(2,)] * 3 + [(3,)] * 5
NAMES = curriculum_names()


def arms_for(cfg: Mapping[str, Any]) -> list[tuple]:
    return ARMS if list(cfg["arm_fields"]) == ["level"] else two_field_arms(ARMS)


def targets(node: Any, path: str = "curriculum") -> list[tuple[str, dict]]:
    """(path, node) of every node with a ``_target_``, nested parts included."""
    out = []
    if isinstance(node, Mapping):
        if "_target_" in node:
            out.append((path, dict(node)))
        for k, v in node.items():
            out += targets(v, f"{path}.{k}")
    return out


def test_configs_are_discovered_and_each_names_its_class():
    assert {"sec", "random", "ordered", "reverse"} <= set(NAMES)
    for name in NAMES:
        cfg = composed(name)
        assert cfg["name"] == name, f"{name}.yaml: name must be the file's stem"
        assert "_target_" in cfg, f"conf/curriculum/{name}.yaml has no _target_"
        assert issubclass(get_class(cfg["_target_"]), CurriculumPolicy)


@pytest.mark.parametrize("name", NAMES)
def test_defaults_live_once_in_the_yaml(name):
    """No constructor of a class a config names has a default for a key the YAML sets, and
    every key the YAML sets is a parameter (nothing silently ignored)."""
    for path, node in targets(composed(name)):
        params = inspect.signature(get_class(node["_target_"])).parameters
        for key in node:
            if key.startswith("_"):
                continue
            assert key in params, f"{path}.{key} is no parameter of {node['_target_']}"
            assert params[key].default is inspect.Parameter.empty, (
                f"{node['_target_']}({key}=...) has a code default; the YAML ({path}.{key}) is the one place"
            )


@pytest.mark.parametrize("name", NAMES)
def test_views_are_read_only_side_effect_free_and_name_arms_as_tuples(name):
    cfg = composed(name)
    policy = build_curriculum(cfg, arms_for(cfg), total_steps=6, seed=5)
    for _ in range(3):
        before = json.dumps(policy.state_dict())
        probs, snap, stats = policy.probs(), policy.snapshot(), policy.stats()
        assert policy.probs() == probs and json.dumps(policy.state_dict()) == before  # nothing moved
        assert list(probs) == list(policy.arms) == list(snap) and all(isinstance(a, tuple) for a in probs)
        assert sum(probs.values()) == pytest.approx(1.0)
        with pytest.raises(TypeError):
            probs[policy.arms[0]] = 1.0  # type: ignore[index]
        with pytest.raises(TypeError):
            snap[policy.arms[0]] = ArmStats(0.0, 1.0, 0)  # type: ignore[index]
        for arm, s in snap.items():
            key = f"curriculum/{arm_name(arm)}"
            assert s.prob == probs[arm] == stats[f"{key}/prob"] and s.count == stats[f"{key}/count"]
            assert (s.q is None) == (f"{key}/q" not in stats) and (s.q is None or s.q == stats[f"{key}/q"])
        idx = policy.sample(4)
        rows = np.repeat(idx, 2)
        rewards = policy.update(rows, np.full(rows.size, 0.5), np.tile([1.0, 0.0], idx.size))
        assert set(rewards) == {policy.arms[policy.arm_index[i]] for i in idx}


def test_the_old_update_key_is_refused_naming_the_new_one():
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["curriculum=sec", "+curriculum.update=all"])
    # DictConfig.update is a method: the key shadowed it (why it was renamed)
    assert OmegaConf.select(cfg, "curriculum.update") == "all"
    with pytest.raises(
        ValueError, match=r"^curriculum\.update was renamed curriculum\.update_rule; write curriculum\.update_rule=all$"
    ):
        build_curriculum(cfg.curriculum, ARMS, total_steps=1, seed=0)
    for old, new in (("ucb_c", "selection.c"), ("success_threshold", "objective.threshold")):
        with pytest.raises(ValueError, match=rf"curriculum\.{old} was renamed curriculum\.{new}"):
            build_curriculum({**composed("sec"), old: 1.0}, ARMS, total_steps=1, seed=0)
    assert build("sec", ARMS, update_rule="all").update_rule == "all"


def test_update_returns_arm_tuples_and_snapshot_follows_the_values():
    b = build("sec", ARMS, alpha=1.0)
    r = b.update([0, 2, 2], [0.2, 0.4, 0.8])
    assert r == {(1,): pytest.approx(0.2), (2,): pytest.approx(0.6)}
    snap = b.snapshot()
    assert snap[(1,)] == ArmStats(pytest.approx(0.2), pytest.approx(b.probs()[(1,)]), 0)
    assert snap[(3,)].q == 0.0 and b.arm_position((3,)) == 2
    assert build("random", ARMS).snapshot()[(2,)] == ArmStats(None, pytest.approx(0.3), 0)


@pytest.mark.parametrize("task", sorted(p.stem for p in (CONF / "task").glob("*.yaml")))
def test_every_curriculum_builds_for_every_task_or_is_refused_in_one_line(task):
    """Each task's training arms (its components x train levels, as the records give them) with
    every curriculum: it builds, or the run is refused with one line before any rollout."""
    from sec.workspace import ConfigError, check_config, task_components

    refused = {}
    for name in NAMES:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = compose(config_name="config", overrides=[f"task={task}", f"curriculum={name}"])
        records = [
            {"task": comp["name"], "level": int(lv)}
            for comp in task_components(cfg.task)
            for lv in comp["train_levels"]
            for _ in range(3)
        ]
        try:
            check_config(cfg)
            arms = arms_of_records(records, list(cfg.curriculum.arm_fields))
            policy = build_curriculum(cfg.curriculum, arms, total_steps=4, seed=0)
        except (ConfigError, ValueError) as e:
            assert "\n" not in str(e)
            refused[name] = str(e)
            continue
        idx = policy.sample(5)
        policy.update(np.repeat(idx, 2), np.full(10, 0.5), np.tile([1.0, 0.0], 5))
    assert set(refused) == (set() if task == "puzzles" else {"sec_2d"}), refused


@pytest.mark.parametrize("name", ["e2h", "e2h_cosine", "adarft"])
def test_difficulty_schedules_refuse_arms_without_a_numeric_level_in_one_line(name):
    arms = [("countdown",), ("zebra",)] * 3
    with pytest.raises(ValueError, match=rf"^curriculum={name} orders arms by the numeric arm field 'level'"):
        build(name, arms, "curriculum.arm_fields=[task]")


def _without(node: dict, path: list[str]) -> dict:
    """A deep copy of ``node`` without the key at ``path``."""
    out = json.loads(json.dumps(node))
    parent = out
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]
    return out


@pytest.mark.parametrize("name", NAMES)
def test_every_missing_key_of_every_class_is_one_line_naming_it_and_its_file(name):
    """A config without a key its class (or a part's class) needs: one ValueError line naming the
    key and the config file, never a TypeError from the constructor (e.g. SEC without update_rule)."""
    cfg = composed(name)
    for path, node in targets(cfg):
        for key in node:
            if key.startswith("_"):
                continue
            parts = [*path.split(".")[1:], key]
            with pytest.raises(ValueError) as err:
                build_curriculum(_without(cfg, parts), arms_for(cfg), total_steps=10, seed=0)
            message = str(err.value)
            assert "\n" not in message and f"{path}.{key} not set" in message, message
            assert "conf/curriculum/" in message, message
