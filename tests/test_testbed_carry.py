"""The carry regime of the testbed (issue 25, docs/testbed.md "The carry regime"): the carry model's
config and a tiny build of it, the answer format's rewards, the pre-registered comparison's
composition (every job, on TRL and on verl's CPU path), and, marked slow, the comparison itself."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from safetensors.torch import load_file
from test_testbed import _sweep, sweep_jobs, tiny_cfg

from conftest import CONF
from sec.models import testbed
from sec.tasks.data import load_task_data
from sec.tasks.rewards import puzzle_reward
from sec.workspace import check_config

BASE = ("experiment=testbed_carry", "profile=testbed_carry")
CURRICULA = ("learnability", "ordered", "random", "sec")


def _compose(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def test_the_carry_model_is_the_testbed_model_pre_trained_on_sums_by_carries():
    cfg = _compose(*BASE)
    lm = OmegaConf.load(CONF / "model" / "testbed_lm.yaml")
    assert cfg.model.name == "testbed_carry" and cfg.model.source == "pretrain"
    assert cfg.model.config == lm.config  # same architecture and vocabulary
    assert cfg.model.pretrain.task == "arith_carry" and cfg.model.pretrain.steps == 1000
    assert dict(cfg.model.pretrain.mix) == {1: 0.95, 2: 0.05, 3: 0, 4: 0}  # every level set: no merge leftover
    assert testbed.model_dir(cfg.model, cfg.paths.cache_dir).name.startswith("testbed_carry-")


def test_a_tiny_carry_model_builds_deterministically_under_its_own_name(tmp_path):
    cfg = tiny_cfg(task="arith_carry", mix={1: 0.95, 2: 0.05, 3: 0, 4: 0})
    cfg["name"] = "testbed_carry"
    a, b = testbed.materialise(cfg, tmp_path / "a"), testbed.materialise(cfg, tmp_path / "b")
    assert a.name == f"testbed_carry-{testbed.cache_key(cfg)}"
    ra, rb = (json.loads((p / testbed.PRETRAIN_RECORD).read_text()) for p in (a, b))
    assert ra["loss"] == rb["loss"] and len(ra["loss"]) == 2  # same settings, same losses
    assert testbed.cache_key(cfg) != testbed.cache_key(tiny_cfg())  # arith_carry, not arith_bare
    wa, wb = (load_file(p / "model.safetensors") for p in (a, b))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_an_answer_with_its_digits_in_the_wrong_order_scores_0(tmp_path):
    task = OmegaConf.to_container(OmegaConf.load(CONF / "task" / "arith_carry.yaml"))
    data = load_task_data({**task, "train_per_level": 50, "test_per_level": 50}, tmp_path)
    checked = 0
    for r in data.itertuples():
        right = json.loads(r.answer)["answer"]
        row = r._asdict()
        assert puzzle_reward(right, row, train=True, format_reward=0.0, extraction="last_number") == 1.0
        if right[::-1] != right:
            assert puzzle_reward(right[::-1], row, train=True, format_reward=0.0, extraction="last_number") == 0.0
            checked += 1
    assert checked > 100


def test_every_job_of_the_comparison_composes_with_its_pre_registered_settings():
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        jobs = sweep_jobs(*BASE)
        pairs = sorted((d["seed"], d["curriculum"]) for d in (dict(o.split("=") for o in j) for j in jobs))
        assert pairs == [(str(s), c) for s in range(5) for c in CURRICULA]
        for job in jobs:
            cfg = compose(config_name="config", overrides=[*BASE, *job])
            check_config(cfg)
            assert (cfg.task.name, cfg.model.name, cfg.tag) == ("arith_carry", "testbed_carry", "testbed_carry")
            assert list(cfg.task.train_levels) == [1, 2, 3] and list(cfg.task.ood_levels) == [4]
            assert cfg.train.temperature == cfg.eval.temperature == 1.0 and cfg.eval.at_start
            assert cfg.eval.every == 10 and cfg.train.learning_rate == 1e-4 and cfg.train.steps == 150
            assert set(cfg.targets) == {"level_2", "level_3"}  # the mastery thresholds
    pre = OmegaConf.load(CONF / "task_model" / "arith_carry_testbed_carry.yaml").sec_hparams
    sec = _compose(*BASE, "curriculum=sec")
    assert (sec.curriculum.alpha, sec.curriculum.tau) == (pre.alpha, pre.tau)


def test_make_sweep_is_the_comparisons_quick_version():
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        jobs = sweep_jobs("experiment=testbed_carry", "profile=testbed_carry_quick")
        assert sorted(j[1] for j in jobs) == ["curriculum=ordered", "curriculum=random", "curriculum=sec"]
        assert all("seed=0" in j for j in jobs)
        full = compose(config_name="config", overrides=[*BASE, "curriculum=sec"])
        quick = compose(config_name="config", overrides=["experiment=testbed_carry", "profile=testbed_carry_quick"])
    assert quick.eval.every == 50 and quick.eval.max_problems_per_level == 100
    for key in ("model", "task", "train", "curriculum", "targets"):  # the same runs, fewer evaluations
        assert quick[key] == full[key], key


def test_the_comparison_composes_with_the_tiny_profile_for_smoke_runs():
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        jobs = sweep_jobs("experiment=testbed_carry", "profile=tiny")
    assert len(jobs) == 20 and all("model=tiny" in j for j in jobs)


@pytest.mark.parametrize("curriculum", CURRICULA)
def test_the_comparison_composes_with_verls_cpu_path_and_validates(tmp_path, curriculum):
    from sec.backends import verl as vb
    from sec.workspace import Workspace

    cfg = _compose("backend=verl", "backend.device=cpu", *BASE, f"curriculum={curriculum}")
    check_config(cfg)
    c = vb.build(Workspace(cfg, tmp_path / "run"), resolve_model=False).config
    assert c.actor_rollout_ref.model.path == str(testbed.model_dir(cfg.model, cfg.paths.cache_dir))
    assert c.trainer.device == "cpu" and c.actor_rollout_ref.rollout.name == "hf"
    assert (c.data.train_batch_size, c.actor_rollout_ref.rollout.n) == (32, 8)
    assert c.actor_rollout_ref.actor.optim.lr == cfg.train.learning_rate == 1e-4
    assert c.trainer.total_training_steps == 150 and c.algorithm.adv_estimator == "grpo"


@pytest.mark.slow
def test_make_sweep_shows_the_curricula_differ(tmp_path):
    """`make sweep` (sweeps/testbed_carry_quick.sh) as it ships: the carry model (built if not cached),
    random / ordered / SEC for 150 steps, then a summary with the sampled level per quarter (ordered
    climbs), the steps to the mastery thresholds, and the report with Figure 3."""
    r = _sweep("sweeps/testbed_carry_quick.sh", tmp_path, timeout=3600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert "mean sampled level per quarter" in r.stdout and "pre-registered target" in r.stdout
    per_run = pd.read_csv(tmp_path / "report" / "per_run.csv").set_index("curriculum")
    quarters = {c: [float(x) for x in per_run.loc[c, "level by quarter"].split(" / ")] for c in per_run.index}
    assert quarters["ordered"] == sorted(quarters["ordered"]) and quarters["ordered"][0] < quarters["ordered"][-1]
    assert (per_run["hardest level pass@1 final"] > per_run["hardest level pass@1 start"]).all()  # RL moves it
    assert (tmp_path / "report" / "figure3.png").exists()


@pytest.mark.slow
def test_the_comparison_end_to_end(tmp_path):
    """sweeps/testbed_carry.sh as it ships (docs/testbed.md has its time): 20 runs, then the report with
    Figure 3's slope per curriculum with its interval, the steps to mastery and every curriculum minus
    random paired over 5 seeds."""
    r = _sweep("sweeps/testbed_carry.sh", tmp_path, timeout=4 * 3600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    out = r.stdout
    assert "[95% CI over seeds]" in out and "pre-registered target" in out
    per_cur = pd.read_csv(tmp_path / "report" / "per_curriculum.csv")
    assert sorted(per_cur["curriculum"]) == sorted(CURRICULA) and (per_cur["seeds"] == 5).all()
    paired = pd.read_csv(tmp_path / "report" / "paired_vs_random.csv")
    for m in ("hardest level pass@1 best", "hardest level pass@1 final", "id pass@1 best", "ood pass@1 final",
              "wasted", "rollouts per signal group", "level slope"):  # fmt: skip
        got = paired[paired["metric"] == m]
        assert set(got["curriculum"]) == {"ordered", "sec", "learnability"} and (got["seeds"] == 5).all(), m
    mastery = pd.read_csv(tmp_path / "report" / "compute_runs.csv")
    assert set(mastery["split"]) == {"level_2", "level_3"} and len(mastery) == 40
    index = (tmp_path / "report" / "index.md").read_text()
    assert "### Figure 3 in numbers" in index and "## Compute to target" in index
