"""The curriculum testbed (docs/testbed.md): its task's levels and bare prompts, no test problem in
training or pre-training, the model build (a tiny version: deterministic from its seed, cached by its
settings, loaded by AutoModelForCausalLM / AutoTokenizer, generating), and the benchmark's configs."""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from conftest import CONF, ROOT
from sec.models import resolve_model, testbed, testbed_train
from sec.models.core import default_config
from sec.models.testbed_train import PretrainData, excluded_expressions, lr_at, task_config
from sec.tasks.data import load_task_data
from sec.tasks.rewards import puzzle_reward
from sec.workspace import check_config

TASK = OmegaConf.to_container(OmegaConf.load(CONF / "task" / "arith_bare.yaml"))


def tiny_cfg(**pretrain) -> dict:
    """The testbed model's config shrunk to seconds: one layer of width 16, a few steps."""
    cfg = default_config()
    cfg["config"].update(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
    cfg["config"]["num_key_value_heads"] = 2
    cfg["pretrain"].update({"steps": 4, "batch_size": 8, "warmup_steps": 1, "decay_steps": 2, "exclude_test_items": 30})
    cfg["pretrain"].update(pretrain)
    return cfg


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return load_task_data({**TASK, "train_per_level": 400, "test_per_level": 200}, tmp_path_factory.mktemp("data"))


# ------------------------------------------------------------------------------------------ the task


def test_levels_are_two_term_sums_and_differences_with_bare_prompts(data):
    ops = {1: "+", 2: "+-", 3: "+", 4: "+-"}
    digits = {1: 2, 2: 2, 3: 3, 4: 3}
    for level, rows in data.groupby("level"):
        for r in rows.itertuples():
            m = re.fullmatch(r"(\d+)([+-])(\d+)=", r.prompt)
            assert m and r.question == r.prompt, r.prompt
            a, op, b = int(m[1]), m[2], int(m[3])
            assert op in ops[level] and max(a, b) <= 10 ** digits[level]
            expected = a + b if op == "+" else a - b
            assert json.loads(r.answer)["answer"] == str(expected)
            assert (
                puzzle_reward(f"{expected}", r._asdict(), train=True, format_reward=0.0, extraction="last_number")
                == 1.0
            )
            wrong = puzzle_reward(
                f"{expected + 1}",
                r._asdict(),
                train=True,
                format_reward=TASK["format_reward"],
                extraction="last_number",
            )
            assert wrong == 0.0
    assert sorted(data.loc[data["split"] == "train", "level"].unique()) == [1, 2, 3]
    assert sorted(data.loc[data["split"] == "test", "level"].unique()) == [1, 2, 3, 4]
    # the easiest level has 101^2 distinct problems: 200 test problems leave most of it to train on
    train1 = data[(data["split"] == "train") & (data["level"] == 1)]
    assert train1["question"].nunique() > 350


def test_no_test_problem_is_trained_on_or_pre_trained_on(data):
    test = set(data.loc[data["split"] == "test", "question"])
    train = set(data.loc[data["split"] == "train", "question"])
    assert test and not test & train
    task = task_config("arith_bare")
    excluded = excluded_expressions(task, 200)
    assert test <= excluded  # the run's test split (200 per level) is inside the pre-training exclusion
    mix = {1: 0.25, 2: 0.25, 3: 0.25, 4: 0.25}
    data = PretrainData(task, mix, 0, excluded, testbed.build_tokenizer(), batch_size=500)
    drawn = [row for step in range(20) for row in data.problems(step)]
    assert {lv for lv, _, _ in drawn} == {1, 2, 3, 4}
    assert not {prompt for _, prompt, _ in drawn} & test, "a test problem in the pre-training data"
    # without the exclusion the same draws would meet them: the check above can fail
    open_data = PretrainData(task, mix, 0, set(), testbed.build_tokenizer(), batch_size=500)
    assert {prompt for step in range(20) for _, prompt, _ in open_data.problems(step)} & test
    # a step's problems depend on (seed, step) only
    assert data.problems(7) == PretrainData(task, mix, 0, excluded, testbed.build_tokenizer(), 500).problems(7)


# ------------------------------------------------------------------------------------------ the model


def test_tokenizer_is_one_token_per_character_without_added_tokens(tmp_path):
    tok = testbed.build_tokenizer()
    ids = tok("32-15=", add_special_tokens=True)["input_ids"]
    assert len(ids) == 6 and tok.convert_ids_to_tokens(ids) == list("32-15=")
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2, 3)
    assert tok("a")["input_ids"] == [tok.unk_token_id]
    assert tok.decode([*tok("-17")["input_ids"], tok.eos_token_id, tok.pad_token_id], skip_special_tokens=True) == "-17"


def test_tiny_build_is_deterministic_cached_and_loads_with_auto_classes(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cfg = tiny_cfg()
    a = testbed.materialise(cfg, tmp_path / "a")
    b = testbed.materialise(cfg, tmp_path / "b")
    assert a.name == b.name == f"testbed_lm-{testbed.cache_key(cfg)}"
    ma, mb = (AutoModelForCausalLM.from_pretrained(p) for p in (a, b))
    for (name, x), (_, y) in zip(ma.state_dict().items(), mb.state_dict().items(), strict=True):
        assert torch.equal(x, y), name
    record = json.loads((a / testbed.PRETRAIN_RECORD).read_text())
    assert record["cache_key"] == testbed.cache_key(cfg) and [s for s, _ in record["loss"]] == [2, 4]
    # another seed: other weights, another cache entry
    other = tiny_cfg(seed=1)
    assert testbed.cache_key(other) != testbed.cache_key(cfg)
    mc = AutoModelForCausalLM.from_pretrained(testbed.materialise(other, tmp_path / "a"))
    assert not torch.equal(mc.model.embed_tokens.weight, ma.model.embed_tokens.weight)
    # a second call finds the cached copy (no rebuild: the record is untouched)
    mtime = (a / testbed.PRETRAIN_RECORD).stat().st_mtime_ns
    assert testbed.materialise(cfg, tmp_path / "a") == a and (a / testbed.PRETRAIN_RECORD).stat().st_mtime_ns == mtime
    tok = AutoTokenizer.from_pretrained(a, padding_side="left")
    assert type(tok).__name__ in ("PreTrainedTokenizerFast", "TokenizersBackend") and len(tok) == 22
    enc = tok(["12+3=", "100-99="], return_tensors="pt", padding=True)
    out = ma.generate(**enc, do_sample=True, max_new_tokens=4, pad_token_id=tok.pad_token_id)
    assert out.shape[0] == 2 and out.shape[1] <= enc["input_ids"].shape[1] + 4
    assert all(isinstance(t, str) for t in tok.batch_decode(out, skip_special_tokens=True))
    # through the project's model resolution, as a run loads it
    resolved = resolve_model(cfg, tmp_path / "a")
    assert (resolved.path, resolved.source) == (str(a), "pretrain")


def test_one_pass_builds_every_point_of_the_dial_as_a_build_of_its_own(tmp_path):
    """pretrain(steps=[...]) shares the constant-rate phase and branches into each decay: the model of
    each total is the one a build of that total alone makes."""
    cfg = tiny_cfg(steps=5)
    many = testbed.pretrain(cfg, steps=[7])
    assert sorted(many) == [5, 7]
    alone = testbed.pretrain(tiny_cfg(steps=7))[7][0]
    for (name, x), (_, y) in zip(many[7][0].state_dict().items(), alone.state_dict().items(), strict=True):
        assert torch.equal(x, y), name
    assert not torch.equal(many[5][0].model.embed_tokens.weight, many[7][0].model.embed_tokens.weight)
    assert many[7][2]["cache_key"] == testbed.cache_key(tiny_cfg(steps=7))
    # materialise caches every total it built
    testbed.materialise(cfg, tmp_path, steps=[7])
    assert testbed.built(testbed.model_dir(tiny_cfg(steps=7), tmp_path))


def test_schedule_is_warmup_stable_decay():
    assert lr_at(0, 100, 10, 20, 1.0) == pytest.approx(0.1)
    assert lr_at(9, 100, 10, 20, 1.0) == 1.0 and lr_at(79, 100, 10, 20, 1.0) == 1.0
    assert lr_at(80, 100, 10, 20, 1.0) == 1.0 and lr_at(90, 100, 10, 20, 1.0) == pytest.approx(0.5)
    assert lr_at(99, 100, 10, 20, 1.0) == pytest.approx(0.5 * (1 + math.cos(math.pi * 19 / 20)))
    # the rate before the decay does not depend on the total
    assert [lr_at(s, 100, 10, 20, 1.0) for s in range(80)] == [lr_at(s, 500, 10, 20, 1.0) for s in range(80)]


def test_bad_pretrain_settings_are_one_clear_error(tmp_path):
    with pytest.raises(testbed_train.TestbedBuildError, match="lacks"):
        testbed.pretrain(tiny_cfg(mix={1: 0.5, 9: 0.5}))
    with pytest.raises(testbed_train.TestbedBuildError, match="warmup_steps"):
        testbed.pretrain(tiny_cfg(steps=2))
    with pytest.raises(testbed_train.TestbedBuildError, match=r"no .*task/countdown_nope\.yaml"):
        testbed.cache_key(tiny_cfg(task="countdown_nope"))
    with pytest.raises(testbed_train.TestbedBuildError, match="basic_arithmetic"):
        testbed.cache_key(tiny_cfg(task="countdown"))


def test_build_command_builds_prints_the_directory_and_reports_bad_settings_in_one_line(tmp_path):
    """``python -m sec.models.testbed build`` as a real process: dotlist overrides over conf/model, the cached
    directory printed; bad settings exit 1 with one line on stderr and cache nothing."""
    tiny = ["config.hidden_size=16", "config.intermediate_size=32", "config.num_hidden_layers=1",
            "config.num_attention_heads=2", "config.num_key_value_heads=2", "pretrain.steps=4",
            "pretrain.batch_size=8", "pretrain.warmup_steps=1", "pretrain.decay_steps=2",
            "pretrain.exclude_test_items=30"]  # fmt: skip
    cmd = [sys.executable, "-m", "sec.models.testbed", "build", "--cache-dir", str(tmp_path), *tiny]
    ok = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert ok.returncode == 0, ok.stderr
    path = Path(ok.stdout.splitlines()[-1].split()[0])  # the last line (wandb may print before it)
    assert path == testbed.model_dir(tiny_cfg(), tmp_path) and (path / testbed.PRETRAIN_RECORD).exists()
    assert "parameters, pre-trained in" in ok.stdout
    bad = subprocess.run([*cmd, "pretrain.steps=2"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert bad.returncode == 1 and str(tmp_path) not in bad.stdout
    errors = [line for line in bad.stderr.splitlines() if not re.match(r"\d{4}-\d\d-\d\d ", line)]  # log lines
    assert len(errors) == 1 and re.fullmatch(
        r"sec\.models\.testbed: model\.pretrain\.steps \(2\) .*warmup_steps.*", errors[0]
    )
    assert [p.name for p in path.parent.iterdir() if p.is_dir()] == [path.name]  # besides lock files


# ------------------------------------------------------------------------------------------ the benchmark


def sweep_jobs(*overrides: str) -> list[list[str]]:
    """The jobs Hydra's basic sweeper makes of ``overrides`` (the experiment's and profile's
    ``hydra.sweeper.params``, the command line winning per key). Call inside ``initialize_config_dir``."""
    cfg = compose(config_name="config", overrides=list(overrides), return_hydra_config=True)
    params = {k: str(v).split(",") for k, v in cfg.hydra.sweeper.params.items()}
    keys = list(params)
    return [[f"{k}={v}" for k, v in zip(keys, combo, strict=True)] for combo in itertools.product(*params.values())]


@pytest.mark.parametrize(("profile", "seeds"), [("testbed", [0, 1, 2, 3, 4]), ("testbed_quick", [0])])
def test_the_benchmark_and_the_quick_sweep_compose(profile, seeds):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        base = ["experiment=testbed", f"profile={profile}"]
        jobs = sweep_jobs(*base)
        assert sorted((j["seed"], j["curriculum"]) for j in map(lambda x: dict(o.split("=") for o in x), jobs)) == [
            (str(s), c) for s in seeds for c in ("ordered", "random", "sec")
        ]
        for job in jobs:
            cfg = compose(config_name="config", overrides=[*base, *job])
            check_config(cfg)
            assert cfg.task.name == "arith_bare" and cfg.model.name == "testbed_lm" and cfg.tag == "testbed"
            assert cfg.model.source == "pretrain" and cfg.model.prompt_format == "plain"
            assert cfg.algorithm.name == "grpo" and cfg.train.temperature == 1.0 and cfg.eval.temperature == 1.0
            assert list(cfg.task.train_levels) == [1, 2, 3] and list(cfg.task.ood_levels) == [4]
            assert cfg.eval.at_start and cfg.eval.max_problems_per_level >= 100 and cfg.eval.k >= 4
            assert cfg.backend.num_threads == 1 and cfg.train.save_every > 0
        sec = compose(config_name="config", overrides=[*base, "curriculum=sec"])
        pre = OmegaConf.load(CONF / "task_model" / "arith_bare_testbed_lm.yaml").sec_hparams
        assert (sec.curriculum.alpha, sec.curriculum.tau) == (pre.alpha, pre.tau)


def test_the_benchmark_composes_with_the_tiny_profile_for_smoke_runs():
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        jobs = sweep_jobs("experiment=testbed", "profile=tiny")
        assert len(jobs) == 15 and all("model=tiny" in j for j in jobs)


@pytest.mark.parametrize("algorithm", ["grpo", "rloo", "ppo"])
@pytest.mark.parametrize("curriculum", ["random", "ordered", "sec"])
def test_the_benchmark_composes_with_verl_and_validates(tmp_path, algorithm, curriculum):
    from sec.backends import verl as vb
    from sec.workspace import Workspace

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=["backend=verl", "experiment=testbed", "profile=testbed", f"curriculum={curriculum}",
                       f"algorithm={algorithm}"],
        )  # fmt: skip
    check_config(cfg)
    run = vb.build(Workspace(cfg, tmp_path / "run"), resolve_model=False)
    c = run.config
    assert c.actor_rollout_ref.model.path == str(testbed.model_dir(cfg.model, cfg.paths.cache_dir))
    assert c.actor_rollout_ref.model.custom_chat_template == vb.PASSTHROUGH_TEMPLATE  # the bare prompt, unchanged
    assert (c.data.train_batch_size, c.actor_rollout_ref.rollout.n) == (32, 8)
    assert c.data.max_response_length == cfg.train.max_completion_length
    assert c.algorithm.adv_estimator == {"grpo": "grpo", "rloo": "rloo", "ppo": "gae"}[algorithm]
    assert c.trainer.total_training_steps == cfg.train.steps


# ------------------------------------------------------------------------------------------ the sweeps


def _sweep(script: str, tmp_path, *args: str, profile: str | None = None, timeout: int = 900):
    env = {
        "PATH": "/usr/bin:/bin", "PY": sys.executable, "SWEEP": str(tmp_path / "sweep"),
        "REPORT": str(tmp_path / "report"), "HOME": str(tmp_path),
        "SEC_CACHE_DIR": os.environ.get("SEC_CACHE_DIR", str(tmp_path / "cache")),
        **({"PROFILE": profile} if profile else {}),
    }  # fmt: skip
    return subprocess.run(["bash", script, *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout)


@pytest.mark.slow
def test_make_sweep_shows_the_curricula_differ(tmp_path):
    """`make sweep-testbed` (sweeps/testbed_quick.sh) as it ships: the testbed model (built if not cached),
    random / ordered / SEC for 150 steps, then a summary in which ordered climbs level by level and
    the report with Figure 3."""
    r = _sweep("sweeps/testbed_quick.sh", tmp_path, timeout=3600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    out = r.stdout
    assert "mean sampled level per quarter" in out and "wasted" in out and "ID pass@1 first -> last" in out
    per_run = pd.read_csv(tmp_path / "report" / "per_run.csv").set_index("curriculum")
    quarters = {c: [float(x) for x in per_run.loc[c, "level by quarter"].split(" / ")] for c in per_run.index}
    assert quarters["ordered"] == sorted(quarters["ordered"]) and quarters["ordered"][0] < quarters["ordered"][-1]
    assert len({tuple(q) for q in quarters.values()}) == 3  # the three curricula sampled differently
    assert (tmp_path / "report" / "figure3.png").exists()


@pytest.mark.slow
def test_the_benchmark_end_to_end(tmp_path):
    """sweeps/testbed.sh as it ships: 15 runs (random / ordered / SEC x seeds 0-4), then the report with
    every curriculum minus random paired over 5 seeds, for each compared metric."""
    r = _sweep("sweeps/testbed.sh", tmp_path, timeout=4 * 3600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    per_cur = pd.read_csv(tmp_path / "report" / "per_curriculum.csv")
    assert sorted(per_cur["curriculum"]) == ["ordered", "random", "sec"] and (per_cur["seeds"] == 5).all()
    paired = pd.read_csv(tmp_path / "report" / "paired_vs_random.csv")
    assert (paired["seeds"] == 5).all() and paired["ci low"].notna().all()
    for m in ("id pass@1 best", "ood pass@1 best", "id pass@1 final", "ood pass@1 final", "wasted",
              "rollouts per signal group", "level slope"):  # fmt: skip
        assert set(paired.loc[paired["metric"] == m, "curriculum"]) == {"ordered", "sec"}, m
    index = (tmp_path / "report" / "index.md").read_text()
    assert "![figure3](figure3.png)" in index and "### The curriculum's state over training" in index
