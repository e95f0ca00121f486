"""backend=verl on CPU with the installed verl (0.9.1): every experiment's composed verl config
validates against verl; our dataset (verl's data.custom_cls) is driven by verl's own data
loader, reward manager and advantage functions; curriculum state round-trips through a
checkpoint directory; verl's file log becomes metrics.jsonl. A training run itself needs CUDA
(see docs/verl.md). verl comes with `make install` (the `verl` extra); without it these tests fail
rather than skip."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from torchdata.stateful_dataloader import StatefulDataLoader
from transformers import AutoTokenizer
from verl import DataProto
from verl.trainer.ppo.ray_trainer import compute_advantage
from verl.trainer.ppo.reward import load_reward_manager
from verl.trainer.ppo.utils import create_rl_dataset, create_rl_sampler
from verl.utils.dataset.rl_dataset import collate_fn

from conftest import CONF, ROOT
from sec.backends import verl as vb
from sec.backends.verl_ext import SECDataset, compute_score
from sec.curriculum import boltzmann
from sec.tasks import puzzle_reward
from sec.workspace import ConfigError, Workspace, check_config


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def run_cfg(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=["backend=verl", *overrides])


def workspace(tmp_path: Path, *overrides: str) -> Workspace:
    cfg = run_cfg(*overrides)
    check_config(cfg)
    return Workspace(cfg, tmp_path / "run")


# ------------------------------------------------------------------------------------------ configs

PAPER_MODELS = ["qwen2.5_3b", "qwen2.5_7b"]


@pytest.mark.parametrize(
    "task,algorithm,model",
    list(itertools.product(options("task"), options("algorithm"), PAPER_MODELS)),
)
def test_every_paper_experiment_composes_and_validates_against_verl(tmp_path, task, algorithm, model):
    ws = workspace(tmp_path, f"task={task}", f"algorithm={algorithm}", f"model={model}", "profile=paper")
    run = vb.build(ws, resolve_model=False)
    c = run.config
    # SEC.md §3 values, as verl reads them
    assert c.algorithm.adv_estimator == {"grpo": "grpo", "rloo": "rloo", "ppo": "gae"}[algorithm]
    assert (c.algorithm.gamma, c.algorithm.lam) == (1.0, 1.0)
    assert c.actor_rollout_ref.actor.use_kl_loss is False and c.actor_rollout_ref.actor.kl_loss_coef == 0.0
    assert c.algorithm.use_kl_in_reward is False
    assert c.actor_rollout_ref.actor.optim.lr == 1e-6 and list(c.actor_rollout_ref.actor.optim.betas) == [0.9, 0.99]
    assert c.actor_rollout_ref.actor.optim.lr_warmup_steps == 0
    assert c.data.train_batch_size == 256 and c.actor_rollout_ref.rollout.n == 8
    assert (c.data.max_prompt_length, c.data.max_response_length) == (1024, 4096)
    assert c.actor_rollout_ref.rollout.temperature == 1.0
    val = c.actor_rollout_ref.rollout.val_kwargs
    assert (val.n, val.temperature, val.do_sample, c.trainer.test_freq) == (8, 1.0, True, 10)
    assert c.critic.enable is (algorithm == "ppo")
    # the curriculum's extension point and its preconditions
    assert c.data.custom_cls.path == "pkg://sec.backends.verl_ext" and c.data.custom_cls.name == "SECDataset"
    assert c.data.dataloader_num_workers == 0 and c.data.shuffle is False and c.trainer.use_v1 is False
    assert c.reward.custom_reward_function.name == "compute_score"
    assert c.trainer.total_training_steps == ws.cfg.train.steps and c.trainer.total_epochs == 1
    gpus = {"qwen2.5_3b": (4, 1, 0.6), "qwen2.5_7b": (8, 2, 0.5)}[model]
    r = c.actor_rollout_ref.rollout
    assert (c.trainer.n_gpus_per_node, r.tensor_model_parallel_size, r.gpu_memory_utilization) == gpus
    # plain TinyZero prompts pass through the chat template unchanged
    assert c.actor_rollout_ref.model.custom_chat_template == vb.PASSTHROUGH_TEMPLATE
    # released SEC scripts (SEC.md silent): 64 problems per optimizer step, 4 steps per batch of 256
    assert c.actor_rollout_ref.actor.ppo_mini_batch_size == 64 and c.actor_rollout_ref.actor.ppo_epochs == 1
    assert c.actor_rollout_ref.model.override_config.attn_implementation == "sdpa"
    assert run.command[1:3] == ["-m", "verl.trainer.main_ppo"]
    assert run.command[3:5] == [f"--config-path={vb.compose.CONFIG_DIR}", "--config-name=sec_ppo_trainer"]
    assert run.command[5:-1] == run.overrides


@pytest.mark.parametrize("curriculum", options("curriculum"))
@pytest.mark.parametrize("profile,model", [("cpu", "smollm2_135m"), ("tiny", "tiny")])
def test_every_curriculum_and_small_profile_validates(tmp_path, curriculum, profile, model):
    task = "puzzles" if curriculum == "sec_2d" else "countdown"
    ws = workspace(tmp_path, f"task={task}", f"curriculum={curriculum}", f"profile={profile}", f"model={model}")
    c = vb.build(ws, resolve_model=False).config
    assert c.data.train_batch_size == ws.cfg.train.prompts_per_step
    assert c.actor_rollout_ref.model.custom_chat_template is None  # chat models keep their template


def test_unknown_verl_key_fails_composition(tmp_path):
    with pytest.raises(ConfigCompositionException, match="no_such_key"):
        vb.compose_verl_config(["trainer.no_such_key=1"])
    ws = workspace(tmp_path, "profile=tiny", "backend.overrides=['actor_rollout_ref.rollout.not_a_setting=3']")
    with pytest.raises(ConfigError, match=r"^verl config: .*not_a_setting"):
        vb.build(ws, resolve_model=False)
    # 2 prompts x 2 rollouts cannot split over 8 GPUs: our one-line check, and verl's own
    ws = workspace(tmp_path, "profile=tiny", "backend.n_gpus_per_node=8")
    with pytest.raises(ConfigError, match=r"4 rollouts must split evenly over .* = 8 GPUs"):
        vb.build(ws, resolve_model=False)
    ws = workspace(tmp_path, "profile=tiny", "backend.dynamic_batch_size=false")
    config = vb.build(ws, resolve_model=False).config
    bad = OmegaConf.merge(config, {"trainer": {"n_gpus_per_node": 8}})
    with pytest.raises(AssertionError, match="divisible"):
        vb.validate_verl_config(bad)


def test_trl_refuses_ppo_in_one_line():
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["algorithm=ppo"])
    with pytest.raises(ConfigError, match=r"backend=trl offers algorithm=grpo\|rloo, not ppo"):
        check_config(cfg)


def launch(*args: str) -> subprocess.CompletedProcess:
    """``python -m sec.launch *args`` in the repo root, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "sec.launch", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )


def test_dry_run_sweep_prints_four_resolved_verl_jobs(tmp_path):
    sweep = tmp_path / "sweep"
    r = launch(
        "-m",
        "backend=verl",
        "task=zebra,arc",
        "curriculum=sec,random",
        "backend.dry_run=true",
        f"hydra.sweep.dir={sweep}",
    )
    assert r.returncode == 0, r.stderr[-4000:]
    out = r.stdout
    assert out.count("# verl 0.9.1 config for run") == 4 and out.count("verl.trainer.main_ppo") == 4
    assert out.count("custom_cls:") == 4 and "experiment_name: zebra-random-s0" in out
    assert "experiment_name: arc-sec-s0" in out
    # nothing was generated or trained
    assert not list(sweep.rglob("*.parquet")) and not list(sweep.rglob("metrics.jsonl"))


# ------------------------------------------------------------------------------------------ the extension


@pytest.fixture(scope="module")
def tokenizer(cache_dir):
    from sec.models import resolve_model

    tiny = OmegaConf.load(CONF / "model" / "tiny.yaml")
    return AutoTokenizer.from_pretrained(resolve_model(tiny, cache_dir).path)


def prepared(tmp_path: Path, *overrides: str):
    """A tiny countdown run: its verl files written and verl's config composed."""
    ws = workspace(tmp_path, "profile=tiny", "task=countdown", *overrides)
    ws.setup()
    paths = vb.verl_paths(ws.run_dir)
    vb.write_run_files(ws, paths)
    run = vb.build(ws, resolve_model=False)
    return ws, paths, run.config


def loader_of(config, tokenizer):
    """verl's own dataset factory and sampler, the data loader as RayPPOTrainer builds it."""
    dataset = create_rl_dataset(config.data.train_files, config.data, tokenizer, None, is_train=True)
    sampler = create_rl_sampler(config.data, dataset)
    loader = StatefulDataLoader(
        dataset=dataset,
        batch_size=config.data.train_batch_size,
        num_workers=config.data.dataloader_num_workers,
        drop_last=True,
        collate_fn=collate_fn,
        sampler=sampler,
    )
    return dataset, loader


def responses_for(records: list[dict], n: int) -> list[str]:
    """Rollout texts per problem: correct, boxed-but-wrong, unboxed, by rollout index."""
    out = []
    for r in records:
        ref = json.loads(r["answer"])["answer"]
        for j in range(n):
            out.append([f"so \\boxed{{{ref}}}", "hence \\boxed{0}", "I give up"][(j + len(out)) % 3])
    return out


def rollout_batch(batch_dict, config, tokenizer, rewarder, texts: list[str], step_seed: int) -> DataProto:
    """What RayPPOTrainer.fit does to a batch up to the advantages, with given response texts."""
    n = config.actor_rollout_ref.rollout.n
    batch = DataProto.from_single_dict(batch_dict)
    batch.non_tensor_batch["uid"] = np.array([f"u{step_seed}-{i}" for i in range(len(batch))], dtype=object)
    batch = batch.repeat(repeat_times=n, interleave=True)
    enc = tokenizer(texts, add_special_tokens=False)["input_ids"]
    t = max(len(e) for e in enc)
    responses = torch.full((len(enc), t), tokenizer.pad_token_id or 0, dtype=torch.long)
    mask = torch.zeros((len(enc), t), dtype=torch.long)
    for i, e in enumerate(enc):
        responses[i, : len(e)] = torch.tensor(e)
        mask[i, : len(e)] = 1
    prompts = torch.zeros((len(enc), 3), dtype=torch.long)
    batch.batch["prompts"] = prompts
    batch.batch["responses"] = responses
    batch.batch["attention_mask"] = torch.cat([torch.ones_like(prompts), mask], dim=1)
    batch.batch["response_mask"] = mask
    # verl's reward manager with our reward function, one rollout at a time (as the reward loop)
    results = [rewarder.loop.run_until_complete(rewarder.run_single(batch[i : i + 1])) for i in range(len(batch))]
    scores = [r["reward_score"] for r in results]
    batch.batch["rm_scores"] = rewarder.assemble_rm_scores(batch, scores)
    batch.batch["token_level_scores"] = batch.batch["rm_scores"]
    batch.batch["token_level_rewards"] = batch.batch["token_level_scores"]
    batch.non_tensor_batch["acc"] = np.array([r["reward_extra_info"]["acc"] for r in results])
    if config.algorithm.adv_estimator == "gae":
        gen = torch.Generator().manual_seed(step_seed)
        batch.batch["values"] = torch.rand(mask.shape, generator=gen) * mask
    return compute_advantage(
        batch,
        adv_estimator=config.algorithm.adv_estimator,
        gamma=config.algorithm.gamma,
        lam=config.algorithm.lam,
        num_repeat=n,
        norm_adv_by_std_in_grpo=config.algorithm.norm_adv_by_std_in_grpo,
        config=config.algorithm,
    )


@pytest.mark.parametrize("algorithm", ["grpo", "rloo", "ppo"])
def test_dataset_takes_verl_advantages_and_updates_q_as_the_core_says(tmp_path, tokenizer, algorithm):
    ws, paths, config = prepared(tmp_path, f"algorithm={algorithm}", "curriculum=sec", "train.steps=3")
    dataset, loader = loader_of(config, tokenizer)
    assert isinstance(dataset, SECDataset) and dataset.is_train
    assert len(loader) == 3  # one data-loader batch per training step
    rewarder = load_reward_manager(config, tokenizer)
    alpha, tau = float(ws.cfg.curriculum.alpha), float(ws.cfg.curriculum.tau)
    problems = ws.train_records
    for step, batch_dict in enumerate(loader, start=1):
        q_before = dataset.policy.q.copy()
        # the batch was drawn with softmax(Q/tau) of the values after the previous update
        draw = [json.loads(x) for x in paths.curriculum_log.read_text().splitlines()][-1]
        assert (draw["step"], draw["phase"]) == (step, "draw")
        probs = [draw[f"curriculum/{a[0]}/prob"] for a in dataset.policy.arms]
        np.testing.assert_allclose(probs, boltzmann(q_before, tau))
        rows = [int(x["sec_problem"]) for x in batch_dict["extra_info"]]
        texts = responses_for([problems[i] for i in rows], config.actor_rollout_ref.rollout.n)
        batch = rollout_batch(batch_dict, config, tokenizer, rewarder, texts, step)

        # the reward function through verl's reward manager: SEC.md §2 rewards of the decoded text
        prow = np.repeat(rows, config.actor_rollout_ref.rollout.n)
        want = [
            puzzle_reward(t, problems[p], train=True, format_reward=0.1, extraction="boxed")
            for t, p in zip(texts, prow, strict=True)
        ]
        np.testing.assert_allclose(batch.batch["token_level_scores"].sum(-1).numpy(), want)
        assert set(np.unique(want)) <= {0.0, 0.1, 1.0} and len(set(want)) > 1
        np.testing.assert_array_equal(batch.non_tensor_batch["acc"], [float(w == 1.0) for w in want])

        adv = batch.batch["advantages"].numpy()
        mask = batch.batch["response_mask"].numpy()
        if algorithm == "grpo":  # verl's GRPO: (r - group mean) / (group std + 1e-6), on every token
            r = np.array(want).reshape(-1, config.actor_rollout_ref.rollout.n)
            a = (r - r.mean(1, keepdims=True)) / (r.std(1, ddof=1, keepdims=True) + 1e-6)
            np.testing.assert_allclose(adv[:, 0], a.reshape(-1), rtol=1e-5, atol=1e-5)
        # shuffle rows as verl's balance_batch may: the dataset must follow extra_info, not order
        perm = torch.randperm(len(batch), generator=torch.Generator().manual_seed(step))
        dataset.on_batch_end(batch[perm])

        # expected: Q <- alpha r + (1 - alpha) Q for the sampled arms, r = mean over the arm's
        # rollouts of the token-mean |A| (SEC.md §1), computed here from verl's advantages
        per_row = (np.abs(adv) * mask).sum(1) / mask.sum(1)
        arm_of = {p: dataset.policy.arms.index((problems[p]["level"],)) for p in set(rows)}
        expected = q_before.copy()
        for k in set(arm_of.values()):
            sel = [arm_of[p] == k for p in prow]
            expected[k] = alpha * per_row[sel].mean() + (1 - alpha) * q_before[k]
        np.testing.assert_allclose(dataset.policy.q, expected, rtol=1e-6, atol=1e-9)
        update = [json.loads(x) for x in paths.curriculum_log.read_text().splitlines()][-1]
        assert (update["step"], update["phase"]) == (step, "update")
        assert 0.0 <= update["zero_variance_frac"] <= 1.0


def test_draw_before_feedback_is_refused(tmp_path, tokenizer):
    _, _, config = prepared(tmp_path, "train.steps=2")
    _, loader = loader_of(config, tokenizer)
    it = iter(loader)
    next(it)
    with pytest.raises(RuntimeError, match="before the curriculum took step 1"):
        next(it)
    bad = OmegaConf.merge(config.data, {"dataloader_num_workers": 2})
    with pytest.raises(ValueError, match="dataloader_num_workers must be 0"):
        SECDataset(config.data.train_files, tokenizer, bad)


def test_validation_set_is_plain_and_compute_score_is_pass_at_1(tmp_path, tokenizer):
    ws, _, config = prepared(tmp_path)
    val = create_rl_dataset(config.data.val_files, config.data, tokenizer, None, is_train=False)
    assert isinstance(val, SECDataset) and not val.is_train
    assert len(val) == len(vb.val_records(ws)) == 8  # tiny profile: 2 problems x 4 test levels
    item = val[0]
    assert item["data_source"] == "countdown/level_1" and item["raw_prompt"][0]["role"] == "user"
    ref = json.loads(item["reward_model"]["ground_truth"])["answer"]
    info = item["extra_info"]
    assert compute_score(item["data_source"], f"\\boxed{{{ref}}}", item["reward_model"]["ground_truth"], info) == {
        "score": 1.0,
        "acc": 1.0,
        "answered": 1.0,
        "reward_timeout": 0.0,
    }
    wrong = compute_score(item["data_source"], "\\boxed{1}", item["reward_model"]["ground_truth"], info)
    assert wrong == {"score": 0.1, "acc": 0.0, "answered": 1.0, "reward_timeout": 0.0}
    none = compute_score(item["data_source"], "no answer", item["reward_model"]["ground_truth"], info)
    assert none["answered"] == 0.0
    assert info["answer_extraction"] == "boxed"
    # the CPU benchmark's rule travels in extra_info too (task.answer_extraction)
    arith = json.dumps({"generator": "basic_arithmetic", "answer": "-4"})
    last = {"task": "arith", "format_reward": 0.0, "answer_extraction": "last_number"}
    assert compute_score("arith/level_2", "5 - 9 = -4", arith, last) == {
        "score": 1.0,
        "acc": 1.0,
        "answered": 1.0,
        "reward_timeout": 0.0,
    }
    assert compute_score("arith/level_2", "5 - 9 = -4", arith, {**last, "answer_extraction": "boxed"})["acc"] == 0.0


def test_curriculum_state_round_trips_through_a_checkpoint(tmp_path, tokenizer):
    """Run A checkpoints at step 2 (verl's data.pt + our curriculum.json); run B resumes there
    with verl's own loader state and draws the same step-3 batch as A."""
    ws, paths, config = prepared(tmp_path, "train.steps=4", "curriculum=sec")
    rewarder = load_reward_manager(config, tokenizer)
    n = config.actor_rollout_ref.rollout.n

    def feed(dataset, batch_dict, step):
        rows = [int(x["sec_problem"]) for x in batch_dict["extra_info"]]
        texts = responses_for([ws.train_records[i] for i in rows], n)
        dataset.on_batch_end(rollout_batch(batch_dict, config, tokenizer, rewarder, texts, step))

    dataset, loader = loader_of(config, tokenizer)
    it = iter(loader)
    drawn = {}
    for step in (1, 2, 3):
        batch_dict = next(it)
        drawn[step] = [int(x["sec_problem"]) for x in batch_dict["extra_info"]]
        if step == 2:  # what RayPPOTrainer._save_checkpoint writes before on_batch_end
            ckpt = paths.checkpoints / "global_step_2"
            ckpt.mkdir(parents=True)
            torch.save(loader.state_dict(), ckpt / "data.pt")
            (paths.checkpoints / "latest_checkpointed_iteration.txt").write_text("2")
        feed(dataset, batch_dict, step)
        if step == 2:
            state_a = dataset.policy.state_dict()
    assert json.loads((paths.checkpoints / "global_step_2" / "curriculum.json").read_text()) == json.loads(
        json.dumps(state_a)
    )
    # an interrupted save: verl's tracker points at step 3, which has no curriculum state
    (paths.checkpoints / "global_step_3").mkdir()
    (paths.checkpoints / "latest_checkpointed_iteration.txt").write_text("3")
    assert vb.prepare_resume(paths) == 2
    assert (paths.checkpoints / "latest_checkpointed_iteration.txt").read_text() == "2"

    resumed, loader_b = loader_of(config, tokenizer)
    assert resumed.resumed_from == 2 and resumed.policy.state_dict() == json.loads(json.dumps(state_a))
    loader_b.load_state_dict(torch.load(paths.checkpoints / "global_step_2" / "data.pt", weights_only=False))
    batch_dict = next(iter(loader_b))
    assert [int(x["sec_problem"]) for x in batch_dict["extra_info"]] == drawn[3]
    assert {x["sec_step"] for x in batch_dict["extra_info"]} == {3}


# ------------------------------------------------------------------------------------------ the real entry point


@pytest.mark.slow
def test_launch_runs_verls_entry_point_up_to_the_gpu_check(tmp_path):
    """`python -m sec.launch backend=verl` (the GPU default, backend.device=cuda) writes the run's
    verl files and starts verl's own `main_ppo` (Ray, the TaskRunner actor, our dataset through
    data.custom_cls, RayPPOTrainer's data loaders); on this CPU machine verl then stops at its GPU
    resource check. Slow: tests/test_verl_cpu.py runs the same entry point through training on
    the CPU, and checks the GPU path's platform in a fresh process."""
    run = tmp_path / "run"
    r = launch("backend=verl", "profile=tiny", "task=countdown", "backend.poll_s=1", f"hydra.run.dir={run}")
    assert r.returncode != 0 and "verl exited with code 1" in r.stderr
    verl_log = (run / "verl" / "verl.log").read_text()
    assert verl_log.count("Using dataset class: SECDataset") == 2  # train and validation sets
    assert "Size of train dataloader: 2, Size of val dataloader: 1" in verl_log
    assert "Total training steps: 2" in verl_log
    assert "Total available GPUs 0 is less than total desired GPUs 1" in verl_log
    spec = json.loads((run / "verl" / "sec_spec.json").read_text())
    assert spec["batch_size"] == 2 and spec["total_steps"] == 2
    assert (run / "verl" / "command.sh").read_text().count("verl.trainer.main_ppo") == 1
    assert not (run / "done.json").exists()
