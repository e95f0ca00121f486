"""The GPU smoke run (`python -m sec.backends.verl.smoke`, conf/profile/smoke.yaml): its config
composes and passes verl's validation here, and its checks judge synthetic run dirs (a passing
one and one broken per check). The run itself needs a GPU (docs/verl.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from conftest import CONF, ROOT
from sec.backends import verl as vb
from sec.backends.verl import smoke
from sec.workspace import Workspace, check_config


def test_smoke_profile_composes_and_passes_verls_validation(tmp_path):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["profile=smoke", "backend=verl"])
    check_config(cfg)
    c = vb.build(Workspace(cfg, tmp_path / "run"), resolve_model=False).config
    assert c.trainer.n_gpus_per_node == 1 and c.trainer.nnodes == 1
    assert c.actor_rollout_ref.model.path == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert (c.trainer.total_training_steps, c.trainer.save_freq, c.trainer.test_freq) == (
        smoke.STEPS,
        smoke.RESUME_STEP,
        smoke.EVAL_EVERY,
    )
    assert c.data.train_batch_size == 8 and c.actor_rollout_ref.rollout.n == 8
    assert cfg.task.name == "arith" and c.data.max_response_length == 32
    assert c.actor_rollout_ref.actor.ppo_mini_batch_size == 8  # capped at the batch
    assert cfg.curriculum.name == "sec" and c.data.custom_cls.name == "SECDataset"


def passing_run(root: Path) -> Path:
    """A run dir as the smoke run leaves it: 4 steps, evals at 2 and 4, resumed at step 2."""
    run = root / "run"
    (run / "verl").mkdir(parents=True)
    (run / "smoke").mkdir()
    q = {1: [0.0, 0.0], 2: [0.1, 0.0], 3: [0.1, 0.2], 4: [0.15, 0.2]}  # after each step's update

    def arms(values):
        return {f"curriculum/{a}/q": v for a, v in zip((1, 2), values, strict=True)}

    records = []
    for step in range(1, 5):
        records.append({"step": step, "kind": "train", **arms(q[step]), "curriculum/fed_back": step < 4})
        if step % 2 == 0:
            for split in ("level_1", "id", "ood"):
                records.append({"step": step, "kind": "eval", "split": split, "pass@1": 0.25, "n_problems": 4})
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    # the second attempt's curriculum log: draw(3) with the state saved at step 2, update(3), draw(4)
    log = [
        {"step": 3, "phase": "draw", **arms(q[2])},
        {"step": 3, "phase": "update", **arms(q[3])},
        {"step": 4, "phase": "draw", **arms(q[3])},
    ]
    (run / "verl" / "curriculum_metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    (run / "smoke" / "attempt2.log").write_text("[INFO] verl: resuming from step 2 (0 metric records dropped)\n")
    (run / "done.json").write_text("{}")
    return run


def rewrite(path: Path, change) -> None:
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    path.write_text("".join(json.dumps(r) + "\n" for r in change(rows)))


def test_a_complete_smoke_run_passes(tmp_path):
    run = passing_run(tmp_path)
    checks = smoke.check_run(run)
    assert all(c.ok for c in checks), [c for c in checks if not c.ok]
    line = smoke.verdict(checks, run)
    assert line.startswith("verl smoke: PASS") and "\n" not in line


BREAKS = {
    "train records": lambda run: rewrite(run / "metrics.jsonl", lambda rs: [*rs, rs[0]]),
    "eval records": lambda run: rewrite(
        run / "metrics.jsonl", lambda rs: [r for r in rs if not (r["kind"] == "eval" and r["step"] == 4)]
    ),
    "curriculum moved": lambda run: rewrite(
        run / "metrics.jsonl",
        lambda rs: [{**r, "curriculum/1/q": 0.0, "curriculum/2/q": 0.0} if r["kind"] == "train" else r for r in rs],
    ),
    "curriculum fed back": lambda run: rewrite(
        run / "metrics.jsonl", lambda rs: [{**r, "curriculum/fed_back": False} if r["step"] == 2 else r for r in rs]
    ),
    "feedback reaches the next draw": lambda run: rewrite(
        run / "verl" / "curriculum_metrics.jsonl",
        lambda rs: [{**r, "curriculum/1/q": 0.0} if (r["step"], r["phase"]) == (4, "draw") else r for r in rs],
    ),
    "resumed from the checkpoint": lambda run: (run / "smoke" / "attempt2.log").write_text("fresh start\n"),
    "curriculum state resumed": lambda run: rewrite(
        run / "verl" / "curriculum_metrics.jsonl",
        lambda rs: [{**r, "curriculum/2/q": 0.5} if (r["step"], r["phase"]) == (3, "draw") else r for r in rs],
    ),
    "run finished": lambda run: (run / "done.json").unlink(),
}


@pytest.mark.parametrize("check", list(BREAKS))
def test_each_broken_smoke_run_fails_on_its_check(tmp_path, check):
    run = passing_run(tmp_path)
    BREAKS[check](run)
    checks = {c.name: c for c in smoke.check_run(run)}
    assert set(checks) == set(BREAKS)
    assert not checks[check].ok
    line = smoke.verdict(list(checks.values()), run)
    assert line.startswith("verl smoke: FAIL ") and "\n" not in line


def test_check_only_cli_prints_one_verdict_line(tmp_path):
    run = passing_run(tmp_path)
    cmd = [sys.executable, "-m", "sec.backends.verl.smoke", "--check-only", "--run-dir", str(run)]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.count("\n") == 1 and r.stdout.startswith("verl smoke: PASS")
    (run / "done.json").unlink()
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and r.stdout.startswith("verl smoke: FAIL run finished")


@pytest.mark.slow
def test_smoke_command_on_a_cpu_machine_fails_in_one_line(tmp_path):
    """Without a GPU verl stops at its resource check: the smoke command says so in one line."""
    run = tmp_path / "smoke"
    r = subprocess.run(
        [sys.executable, "-m", "sec.backends.verl.smoke", "--run-dir", str(run), "--timeout-s", "600"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    assert r.returncode == 1 and r.stdout.count("\n") == 1, r.stdout + r.stderr[-2000:]
    assert r.stdout.startswith("verl smoke: FAIL first attempt: no complete step-2 checkpoint")
    assert "Total available GPUs 0" in (run / "verl" / "verl.log").read_text()
