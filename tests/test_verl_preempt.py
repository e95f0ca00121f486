"""verl's checkpoint on SLURM's preemption signal (sec/backends/verl/launch.py): the launcher asks
for a save, the dataset inside verl's trainer arms verl's public ESI hook so verl saves at its next
step's save point, the launcher stops verl once that checkpoint is complete and hands over to
submitit's requeue. verl's own trainer needs a GPU; here its decision function
(``should_save_ckpt_esi``) and a stand-in trainer process take its place."""

from __future__ import annotations

import json
import os
import signal
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from transformers import AutoTokenizer
from verl import DataProto
from verl.trainer.ppo.utils import create_rl_dataset
from verl.utils.checkpoint.checkpoint_manager import should_save_ckpt_esi

from conftest import CONF
from sec import rundir
from sec.backends import verl as vb
from sec.backends import verl_ext
from sec.backends.verl.launch import spawn, stop, supervise
from sec.backends.verl_ext import ESI_EXPIRATION
from sec.errors import RunInterrupted
from sec.metrics import MetricsWriter
from sec.preempt import PreemptionGuard
from sec.workspace import Workspace, check_config


def prepared(tmp_path: Path, *overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["backend=verl", "profile=tiny", *overrides])
    check_config(cfg)
    ws = Workspace(cfg, tmp_path / "run")
    ws.setup()
    paths = vb.verl_paths(ws.run_dir)
    vb.write_run_files(ws, paths)
    return ws, paths, vb.build(ws, resolve_model=True)


def feedback(dataset, step: int) -> DataProto:
    """A step's batch as on_batch_end gets it (2 rollouts per drawn problem)."""
    rows = np.repeat(dataset.drawn, 2)
    n, t = len(rows), 3
    gen = torch.Generator().manual_seed(step)
    return DataProto.from_dict(
        tensors={
            "advantages": torch.randn((n, t), generator=gen),
            "response_mask": torch.ones((n, t), dtype=torch.long),
            "token_level_scores": torch.zeros((n, t)),
        },
        non_tensors={
            "extra_info": np.array([{"sec_problem": int(r)} for r in rows], dtype=object),
            "uid": np.array([f"u{i // 2}" for i in range(n)], dtype=object),
        },
    )


def test_save_request_makes_verls_esi_hook_save_at_the_next_step(tmp_path, monkeypatch):
    monkeypatch.delenv(ESI_EXPIRATION, raising=False)
    monkeypatch.delenv("MLP_CURRENT_CAPACITY_BLOCK_EXPIRATION_TIMESTAMP", raising=False)
    _, paths, run = prepared(tmp_path, "train.steps=3")
    tokenizer = AutoTokenizer.from_pretrained(run.model)
    dataset = create_rl_dataset(run.config.data.train_files, run.config.data, tokenizer, None, is_train=True)
    try:
        dataset[0]  # step 1 drawn
        dataset.on_batch_end(feedback(dataset, 1))
        assert not should_save_ckpt_esi(max_steps_duration=30.0)  # no request: verl's schedule only
        rundir.write_json_atomic(paths.save_request, {"after_step": 0})
        dataset[2]  # step 2
        dataset.on_batch_end(feedback(dataset, 2))  # verl did not save step 2
        assert os.environ[ESI_EXPIRATION]
        assert should_save_ckpt_esi(max_steps_duration=0.0)  # verl's own decision at step 3's save point
        time.sleep(1.1)
        assert should_save_ckpt_esi(max_steps_duration=30.0)  # and it stays due
        dataset[4]  # step 3: verl saves it, then calls on_batch_end
        (paths.checkpoints / "global_step_3").mkdir(parents=True)
        monkeypatch.setattr(verl_ext, "HOLD_S", 0.5)
        t0 = time.monotonic()
        dataset.on_batch_end(feedback(dataset, 3))  # holds verl for the launcher to stop it
        assert time.monotonic() - t0 >= 0.5
        assert rundir.is_complete(paths.checkpoints / "global_step_3")
        assert ESI_EXPIRATION not in os.environ and not should_save_ckpt_esi(max_steps_duration=30.0)
    finally:
        os.environ.pop(ESI_EXPIRATION, None)


#: a stand-in for verl's trainer: a step every 0.3 s; once asked (save_request), it saves the next
#: step's checkpoint (the dataset's curriculum.json included) and goes on until it is stopped
TRAINER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    root, ckpts = Path(sys.argv[1]), Path(sys.argv[2])
    step, asked = 0, False
    while step < 1000:
        time.sleep(0.3)
        step += 1
        if asked:
            (ckpts / f"global_step_{step}").mkdir(parents=True, exist_ok=True)
            (ckpts / f"global_step_{step}" / "curriculum.json").write_text("{}")
            asked = False
        asked = asked or (root / "save_request").exists() and not any(ckpts.glob("global_step_*"))
        (root / "steps").write_text(str(step))
    """
)


def start(paths, tmp_path: Path):
    script = tmp_path / "trainer.py"
    script.write_text(TRAINER)
    return spawn(
        [sys.executable, str(script), str(paths.root), str(paths.checkpoints)],
        tmp_path,
        dict(os.environ),
        paths.process_log,
    )


def setup_run(tmp_path: Path, save_every: int):
    paths = vb.verl_paths(tmp_path / "run")
    paths.root.mkdir(parents=True)
    paths.spec.write_text(json.dumps({"save_every": save_every}))
    merger = vb.MetricsMerger(MetricsWriter(tmp_path / "run"), paths, 1000, {}, [1], [2])
    return paths, merger


def test_usr2_saves_at_the_next_step_then_stops_verl_and_requeues(tmp_path):
    paths, merger = setup_run(tmp_path, save_every=10)
    handed_over = []
    previous = signal.signal(signal.SIGUSR2, lambda s, f: handed_over.append(s))  # submitit's handler
    try:
        with PreemptionGuard() as guard:
            proc = start(paths, tmp_path)
            try:
                time.sleep(1.0)
                # SLURM signals every process of the job step: verl ignores it, the launcher acts
                os.killpg(proc.pid, signal.SIGUSR2)
                os.kill(os.getpid(), signal.SIGUSR2)
                steps = paths.root / "steps"
                at = int(steps.read_text() or 0) if steps.exists() else 0
                assert guard.requested and not handed_over and proc.poll() is None
                outcome = supervise(proc, merger, paths, guard, poll_s=0.1)
            finally:
                stop(proc)
            assert outcome == "preempted" and proc.returncode == -signal.SIGTERM
            assert json.loads(paths.save_request.read_text())["after_step"] == 0
            newest = rundir.newest_complete_checkpoint(paths.checkpoints, "verl")
            assert newest is not None and newest[0] > at  # saved at a step boundary after the signal
            with pytest.raises(RunInterrupted, match="returned without requeueing"):  # submitit's exits
                guard.hand_over()
        assert handed_over == [signal.SIGUSR2]
    finally:
        signal.signal(signal.SIGUSR2, previous)


def test_without_periodic_checkpoints_a_preemption_stops_verl_at_once(tmp_path):
    paths, merger = setup_run(tmp_path, save_every=0)
    previous = signal.signal(signal.SIGUSR2, lambda s, f: None)
    try:
        with PreemptionGuard() as guard:
            proc = start(paths, tmp_path)
            try:
                os.kill(os.getpid(), signal.SIGUSR2)
                assert supervise(proc, merger, paths, guard, poll_s=0.1) == "preempted"
            finally:
                stop(proc)
        assert not list(paths.checkpoints.glob("global_step_*"))
    finally:
        signal.signal(signal.SIGUSR2, previous)


def test_without_a_signal_supervise_waits_for_verl_to_exit(tmp_path):
    paths, merger = setup_run(tmp_path, save_every=10)
    with PreemptionGuard() as guard:  # no submitit handler: inactive
        proc = spawn(
            [sys.executable, "-c", "import time; time.sleep(0.5)"], tmp_path, dict(os.environ), paths.process_log
        )
        assert supervise(proc, merger, paths, guard, poll_s=0.1) == "exited" and proc.returncode == 0
    assert not guard.active and not paths.save_request.exists()


def test_a_resume_drops_an_old_save_request(tmp_path):
    """The requeued attempt starts without the previous attempt's request (launch._resume)."""
    from sec.backends.verl.launch import _resume

    ws, paths, _ = prepared(tmp_path)
    rundir.write_json_atomic(paths.save_request, {"after_step": 0})
    ws.metrics = MetricsWriter(ws.run_dir)
    merger = vb.MetricsMerger(ws.metrics, paths, 2, {}, [1], [2])
    assert _resume(ws, paths, merger) == 0 and not paths.save_request.exists()
