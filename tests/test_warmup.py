"""The testbed's external check (docs/testbed.md): the format warm-up SFT of a pretrained model
(sec/models/warmup.py, a tiny base here: deterministic, cached by its settings, loaded by the auto classes,
through the project's model resolution), its errors, and the check's sweep configs (TRL and verl)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from test_testbed import sweep_jobs

from conftest import CONF, ROOT
from sec.models import resolve_model, warmup
from sec.models.core import default_config
from sec.models.testbed_train import excluded_expressions, task_config
from sec.workspace import check_config


def tiny_cfg(**sft) -> dict:
    """The external check's model config on the tiny random base (seconds): 3 steps of 4 rows."""
    cfg = default_config("smollm2_135m_sft")
    cfg["base"] = "tiny"
    cfg["sft"].update({"steps": 3, "batch_size": 4, "exclude_test_items": 30, "learning_rate": 1e-3})
    cfg["sft"].update(sft)
    return cfg


def test_rows_are_the_task_levels_in_the_model_prompt_format_without_test_problems():
    cfg = tiny_cfg(steps=20, batch_size=8)
    rows = warmup.sft_rows(cfg)
    assert len(rows) == 160 and rows == warmup.sft_rows(cfg)  # a pure function of the settings
    assert {r["level"] for r in rows} == {1, 2}  # the mix's levels only
    task = task_config("arith_bare")
    tests = excluded_expressions(task, 30)
    for r in rows:
        assert isinstance(r["prompt"], str) and r["prompt"].endswith("=") and r["prompt"] not in tests
        a, op, b = re.fullmatch(r"(\d+)([+-])(\d+)=", r["prompt"]).groups()
        assert r["completion"] == str(int(a) + int(b) if op == "+" else int(a) - int(b))
    chat = warmup.sft_rows({**cfg, "prompt_format": "chat"})
    assert chat[0]["prompt"] == [{"role": "user", "content": rows[0]["prompt"]}]
    assert chat[0]["completion"] == [{"role": "assistant", "content": rows[0]["completion"]}]
    assert warmup.sft_rows(tiny_cfg(steps=20, batch_size=8, seed=1)) != rows


def test_tiny_warmup_is_deterministic_cached_and_loads_with_auto_classes(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cfg = tiny_cfg()
    a = warmup.materialise(cfg, tmp_path / "a")
    b = warmup.materialise(cfg, tmp_path / "b")
    assert a.name == b.name == f"smollm2_135m_sft-{warmup.cache_key(cfg)}"
    ma, mb = (AutoModelForCausalLM.from_pretrained(p) for p in (a, b))
    for (name, x), (_, y) in zip(ma.state_dict().items(), mb.state_dict().items(), strict=True):
        assert torch.equal(x, y), name
    # the SFT moved the base model's weights
    base = AutoModelForCausalLM.from_pretrained(resolve_model(default_config("tiny"), tmp_path / "a").path)
    assert not torch.equal(base.model.embed_tokens.weight, ma.model.embed_tokens.weight)
    record = json.loads((a / warmup.SFT_RECORD).read_text())
    assert record["cache_key"] == warmup.cache_key(cfg) and record["rows"] == 12 and record["loss"]
    assert record["base_source"] == "random_init" and record["settings"]["base"] == "tiny"
    # another seed or step count: another cache entry
    assert warmup.cache_key(tiny_cfg(seed=1)) != warmup.cache_key(cfg) != warmup.cache_key(tiny_cfg(steps=4))
    # a second call finds the cached copy (no rebuild: the record is untouched)
    mtime = (a / warmup.SFT_RECORD).stat().st_mtime_ns
    assert warmup.materialise(cfg, tmp_path / "a") == a and (a / warmup.SFT_RECORD).stat().st_mtime_ns == mtime
    tok = AutoTokenizer.from_pretrained(a, padding_side="left")
    enc = tok(["12+3=", "100-99="], return_tensors="pt", padding=True, add_special_tokens=False)
    out = ma.generate(**enc, do_sample=True, max_new_tokens=4, pad_token_id=tok.pad_token_id)
    assert out.shape[0] == 2 and out.shape[1] <= enc["input_ids"].shape[1] + 4
    # through the project's model resolution, as a run loads it
    resolved = resolve_model(cfg, tmp_path / "a")
    assert (resolved.path, resolved.source) == (str(a), "sft")


def test_bad_warmup_settings_are_one_clear_error(tmp_path):
    with pytest.raises(warmup.WarmupBuildError, match=r"model.base='nope'"):
        warmup.cache_key({**tiny_cfg(), "base": "nope"})
    with pytest.raises(warmup.WarmupBuildError, match="itself a warm-up model"):
        warmup.cache_key({**tiny_cfg(), "base": "smollm2_135m_sft"})
    with pytest.raises(warmup.WarmupBuildError, match=r"model.sft.mix has levels \[9\]"):
        warmup.cache_key(tiny_cfg(mix={1: 0.5, 9: 0.5}))
    with pytest.raises(warmup.WarmupBuildError, match="basic_arithmetic"):
        warmup.cache_key(tiny_cfg(task="countdown"))
    with pytest.raises(warmup.WarmupBuildError, match="needs `sft:`"):
        warmup.cache_key({k: v for k, v in tiny_cfg().items() if k != "sft"})
    # rows that TRL would truncate to nothing: one line naming the key, nothing cached
    with pytest.raises(warmup.WarmupBuildError, match=r"model.sft.max_length=4: \d+ of 12"):
        warmup.materialise(tiny_cfg(max_length=4), tmp_path)
    assert not warmup.model_dir(tiny_cfg(max_length=4), tmp_path).exists()


def test_build_command_builds_prints_the_directory_and_reports_bad_settings_in_one_line(tmp_path):
    """``python -m sec.models.warmup build`` as a real process (tiny base): the cached directory printed;
    a bad base exits 1 with one line on stderr."""
    tiny = ["base=tiny", "sft.steps=3", "sft.batch_size=4", "sft.exclude_test_items=30", "sft.learning_rate=1e-3"]
    cmd = [sys.executable, "-m", "sec.models.warmup", "build", "--cache-dir", str(tmp_path), *tiny]
    ok = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert ok.returncode == 0, ok.stderr
    path = Path(ok.stdout.splitlines()[-1].split()[0])  # the last line (wandb may print before it)
    assert path == warmup.model_dir(tiny_cfg(), tmp_path) and (path / warmup.SFT_RECORD).exists()
    assert "(SFT of tiny in" in ok.stdout
    bad = subprocess.run([*cmd, "base=nope"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    errors = [line for line in bad.stderr.splitlines() if not re.match(r"\d{4}-\d\d-\d\d ", line)]  # log lines
    assert bad.returncode == 1 and str(tmp_path) not in bad.stdout and len(errors) == 1
    assert re.fullmatch(r"sec\.models\.warmup: .*model\.base='nope'.*", errors[0])


# ------------------------------------------------------------------------------------------ the check's sweep


def test_the_external_check_composes():
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        base = ["experiment=testbed_smollm2", "profile=testbed_smollm2"]
        jobs = sweep_jobs(*base)
        assert sorted((d["seed"], d["curriculum"]) for d in (dict(o.split("=") for o in j) for j in jobs)) == [
            (str(s), c) for s in (0, 1, 2, 3) for c in ("random", "sec")
        ]
        for job in jobs:
            cfg = compose(config_name="config", overrides=[*base, *job])
            check_config(cfg)
            assert cfg.task.name == "arith_bare" and cfg.model.name == "smollm2_135m_sft" and cfg.model.source == "sft"
            assert cfg.model.base == "smollm2_135m" and cfg.model.prompt_format == "plain"
            assert cfg.train.temperature == 1.0 and cfg.eval.temperature == 1.0
            assert cfg.eval.at_start and cfg.eval.max_problems_per_level >= 100
        sec = compose(config_name="config", overrides=[*base, "curriculum=sec"])
        # SEC's settings are the testbed's pre-registered ones, not tuned on this model
        pre = OmegaConf.load(CONF / "task_model" / "arith_bare_testbed_lm.yaml").sec_hparams
        assert (sec.curriculum.alpha, sec.curriculum.tau) == (pre.alpha, pre.tau)
        assert all("model=tiny" in j for j in sweep_jobs("experiment=testbed_smollm2", "profile=tiny"))


def test_the_external_check_composes_with_verl_and_validates(tmp_path):
    from sec.backends import verl as vb
    from sec.workspace import Workspace

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=["backend=verl", "experiment=testbed_smollm2", "profile=testbed_smollm2", "curriculum=sec"],
        )
    check_config(cfg)
    run = vb.build(Workspace(cfg, tmp_path / "run"), resolve_model=False)
    c = run.config
    assert c.actor_rollout_ref.model.path == str(warmup.model_dir(cfg.model, cfg.paths.cache_dir))
    assert (c.data.train_batch_size, c.actor_rollout_ref.rollout.n) == (8, 8)


@pytest.mark.slow
def test_the_external_check_end_to_end(tmp_path):
    """sweeps/testbed_smollm2.sh as it ships: the warm-up model (built if not cached), random / SEC x
    seeds 0-3, then the report with SEC minus random paired over 4 seeds (~1 h on 2 cores)."""
    import pandas as pd
    from test_testbed import _sweep

    r = _sweep("sweeps/testbed_smollm2.sh", tmp_path, timeout=3 * 3600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    per_cur = pd.read_csv(tmp_path / "report" / "per_curriculum.csv")
    assert sorted(per_cur["curriculum"]) == ["random", "sec"] and (per_cur["seeds"] == 4).all()
    paired = pd.read_csv(tmp_path / "report" / "paired_vs_random.csv")
    assert (paired["seeds"] == 4).all() and paired["ci low"].notna().all()
    assert {"id pass@1 best", "ood pass@1 best", "wasted", "rollouts per signal group"} <= set(paired["metric"])
