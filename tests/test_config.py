"""Every config composes and resolves; cross-group checks reject what cannot work."""

from __future__ import annotations

import itertools

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import OmegaConf

from conftest import CONF
from sec.workspace import ConfigError, check_config, task_components


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def compose_cfg(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def test_groups_offer_what_the_readme_says():
    # each task: tests/test_task_registry.py
    assert {"countdown", "zebra", "arc", "math", "puzzles", "arith_bare"} <= set(options("task"))
    assert {"smollm2_135m", "qwen2.5_3b", "qwen2.5_7b", "tiny"} <= set(options("model"))
    assert options("algorithm") == ["grpo", "ppo", "rloo"]
    assert options("curriculum") == [
        "adarft", "dump", "e2h", "e2h_cosine", "learnability", "mopps", "ordered", "random", "reverse", "sec",
        "sec_2d", "sec_egreedy", "sec_greso", "sec_progress", "sec_success", "sec_thompson", "sec_ucb",
    ]  # fmt: skip
    assert options("backend") == ["trl", "verl"]
    assert options("logger") == ["none", "wandb"]
    assert {"cpu", "tiny", "paper"} <= set(options("profile"))


@pytest.mark.parametrize(
    "task,curriculum,algorithm",
    list(itertools.product(options("task"), options("curriculum"), options("algorithm"))),
)
def test_every_task_curriculum_algorithm_composes(task, curriculum, algorithm):
    cfg = compose_cfg(f"task={task}", f"curriculum={curriculum}", f"algorithm={algorithm}")
    OmegaConf.to_container(cfg, resolve=True)
    if curriculum == "sec_2d" and task != "puzzles":  # (task, level) arms need a task mix
        with pytest.raises(ConfigError, match="needs a multi-task task"):
            check_config(cfg)
        return
    if algorithm == "ppo":  # a critic: backend=verl only (tests/test_verl_backend.py validates those)
        with pytest.raises(ConfigError, match=r"backend=trl offers algorithm=grpo\|rloo, not ppo"):
            check_config(cfg)
        return
    check_config(cfg)
    assert cfg.task.name == task and cfg.curriculum.name == curriculum and cfg.algorithm.name == algorithm


@pytest.mark.parametrize(
    "group,option",
    [(g, o) for g in ("model", "backend", "logger", "profile") for o in options(g)],
)
def test_every_option_of_the_other_groups_composes(group, option):
    cfg = compose_cfg(f"{group}={option}")
    OmegaConf.to_container(cfg, resolve=True)
    check_config(cfg)


def test_defaults_are_the_paper_values_under_the_paper_profile():
    cfg = compose_cfg("profile=paper", "model=qwen2.5_3b")
    assert cfg.train.prompts_per_step == 256 and cfg.algorithm.num_generations == 8
    assert cfg.train.learning_rate == 1e-6 and list(cfg.train.adam_betas) == [0.9, 0.99]
    assert cfg.train.max_prompt_length == 1024 and cfg.train.max_completion_length == 4096
    assert cfg.algorithm.beta == 0.0 and cfg.train.temperature == 1.0
    assert cfg.eval.k == 8 and cfg.eval.every == 10 and cfg.eval.temperature == 1.0
    assert cfg.task.train_per_level == 10000 and cfg.task.test_per_level == 200
    assert cfg.curriculum.alpha == 0.5 and cfg.curriculum.tau == 1.0
    assert cfg.model.hub_id == "Qwen/Qwen2.5-3B"


def test_paper_levels_are_config():
    cfg = compose_cfg("task=countdown")
    assert [cfg.task.levels[k].min_numbers for k in (1, 2, 3, 4)] == [3, 4, 5, 6]
    assert list(cfg.task.train_levels) == [1, 2, 3] and list(cfg.task.ood_levels) == [4]
    cfg = compose_cfg("task=zebra")
    assert [cfg.task.levels[k].num_people for k in (1, 2, 3, 4)] == [3, 4, 5, 6]
    cfg = compose_cfg("task=arc")
    assert [cfg.task.levels[k].min_size for k in (1, 2, 3, 4)] == [10, 20, 30, 40]


def test_unknown_option_is_one_clear_error():
    with pytest.raises(HydraException, match="curriculum"):
        compose_cfg("curriculum=sec3d")


def test_cross_group_checks():
    cfg = compose_cfg("task.ood_levels=[5]")
    with pytest.raises(ConfigError, match="ood_levels"):
        check_config(cfg)
    cfg = compose_cfg("algorithm.num_generations=1")
    with pytest.raises(ConfigError, match="num_generations"):
        check_config(cfg)


@pytest.mark.parametrize(
    "task,model,alpha,tau,steps",
    [
        ("countdown", "qwen2.5_3b", 0.5, 1.0, 240),
        ("zebra", "qwen2.5_3b", 0.5, 1.0, 240),
        ("arc", "qwen2.5_3b", 0.5, 1.0, 240),
        ("countdown", "qwen2.5_7b", 0.5, 0.2, 120),
        ("zebra", "qwen2.5_7b", 0.5, 0.4, 120),
        ("arc", "qwen2.5_7b", 0.5, 1.0, 120),
        ("math", "qwen2.5_3b", 0.2, 1.0, 240),
        ("math", "qwen2.5_7b", 0.5, 0.4, 240),
    ],
)
def test_table_s1_is_picked_by_task_and_model(task, model, alpha, tau, steps):
    cfg = compose_cfg(f"task={task}", f"model={model}", "curriculum=sec", "profile=paper")
    assert (cfg.curriculum.alpha, cfg.curriculum.tau, cfg.train.steps) == (alpha, tau, steps)
    # the variants inherit the pair's values; the command line still wins; the profile's sizes win
    assert compose_cfg(f"task={task}", f"model={model}", "curriculum=sec_ucb").curriculum.tau == tau
    assert compose_cfg(f"task={task}", f"model={model}", "curriculum.tau=0.3").curriculum.tau == 0.3
    assert compose_cfg(f"task={task}", f"model={model}", "profile=cpu").train.steps == 6


def test_pairs_without_a_specialisation_keep_the_defaults():
    cfg = compose_cfg("task=zebra", "model=smollm2_135m")
    assert (cfg.curriculum.alpha, cfg.curriculum.tau) == (0.5, 1.0)


def test_puzzles_mix_and_sec_2d():
    cfg = compose_cfg("task=puzzles", "curriculum=sec_2d", "model=qwen2.5_3b", "profile=paper")
    assert list(cfg.curriculum.arm_fields) == ["task", "level"]
    assert (cfg.curriculum.alpha, cfg.curriculum.tau, cfg.train.steps) == (0.5, 0.2, 720)
    comps = task_components(cfg.task)
    assert [c["name"] for c in comps] == ["countdown", "zebra", "arc"]
    assert all(c["train_per_level"] == 10000 and c["test_per_level"] == 200 for c in comps)
    tiny = compose_cfg("task=puzzles", "profile=tiny")
    assert {c["train_per_level"] for c in task_components(tiny.task)} == {tiny.task.train_per_level}


def test_table_2_values_are_picked_by_algorithm_task_and_model():
    cfg = compose_cfg("algorithm=rloo", "task=countdown", "model=qwen2.5_3b", "curriculum=sec", "profile=paper")
    assert (cfg.curriculum.alpha, cfg.curriculum.tau, cfg.train.steps) == (0.5, 0.25, 120)
    cfg = compose_cfg("algorithm=grpo", "task=countdown", "model=qwen2.5_3b", "curriculum=sec", "profile=paper")
    assert (cfg.curriculum.tau, cfg.train.steps) == (1.0, 240)


def test_math_task_config():
    cfg = compose_cfg("task=math", "model=qwen2.5_7b", "curriculum=sec", "profile=paper")
    check_config(cfg)
    assert list(cfg.task.train_levels) == [1, 2, 3, 4, 5] and cfg.task.format_reward == 0.0
    assert list(cfg.task.eval_sets) == ["math500", "amc", "aime24"]
    assert list(cfg.task.id_sets) == ["math500"] and list(cfg.task.ood_sets) == ["amc", "aime24"]
    assert cfg.task.eval_sets.math500.hub == "HuggingFaceH4/MATH-500"
    assert cfg.task.eval_sets.amc.hub == "AI-MO/aimo-validation-amc"
    assert cfg.task.eval_sets.aime24.hub == "Maxwell-Jia/AIME_2024"
