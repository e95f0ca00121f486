"""Memory bounds of a run (issue 13 item 5; docs/memory.md): what a finished job leaves alive
in the process that runs the next job of a sweep, the tokens of one evaluation generate call
and of one training forward/backward pass."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

import sec.workspace
from conftest import CONF
from sec.workspace import Workspace


def _cfg(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=["profile=tiny", *overrides])


def _alive(kind: type) -> int:
    return sum(isinstance(o, kind) for o in gc.get_objects())


def test_a_finished_job_leaves_no_model_trainer_or_optimizer_alive(tmp_path, monkeypatch):
    """Hydra's basic launcher runs a sweep's jobs one after another in one process: the model,
    trainer and optimizer state of a finished job must be gone before the next job loads its own."""
    from trl import GRPOTrainer

    models: list[weakref.ref] = []
    load = sec.workspace.load_model_and_tokenizer

    def load_and_track(cfg, cache_dir):
        model, tokenizer, resolved = load(cfg, cache_dir)
        models.append(weakref.ref(model))
        return model, tokenizer, resolved

    monkeypatch.setattr(sec.workspace, "load_model_and_tokenizer", load_and_track)
    gc.collect()
    optimizers = _alive(torch.optim.Optimizer)
    for job, task in enumerate(["zebra", "arc"]):
        cfg = _cfg(f"task={task}", "curriculum=sec", "train.steps=1", "train.save_every=0")
        Workspace(cfg, tmp_path / f"job{job}").run()
        # no gc.collect() here: the job itself must leave nothing behind
        assert len(models) == job + 1
        assert [ref() for ref in models] == [None] * len(models), f"a model is alive after job {job}"
        assert _alive(GRPOTrainer) == 0, f"a trainer is alive after job {job}"
        assert _alive(torch.optim.Optimizer) <= optimizers, f"an optimizer is alive after job {job}"


def _train_passes(tmp_path, monkeypatch, name: str, *overrides: str) -> tuple[list[tuple[int, int]], dict, Workspace]:
    """Run one tiny training step; returns the (rows, tokens) of every forward pass that builds
    a graph for the backward pass, the step's train record and the workspace."""
    passes: list[tuple[int, int]] = []
    load = sec.workspace.load_model_and_tokenizer

    def record(module, args, kwargs):
        if torch.is_grad_enabled() and module.training:
            ids = kwargs.get("input_ids", args[0] if args else None)
            passes.append((int(ids.shape[0]), int(ids.numel())))

    def load_and_hook(cfg, cache_dir):
        model, tokenizer, resolved = load(cfg, cache_dir)
        model.register_forward_pre_hook(record, with_kwargs=True)
        return model, tokenizer, resolved

    monkeypatch.setattr(sec.workspace, "load_model_and_tokenizer", load_and_hook)
    # the tiny random model never solves a puzzle: a reward that varies within a group (length
    # parity of the completion) gives non-zero advantages, so the compared gradients are not 0
    monkeypatch.setattr(Workspace, "train_score", lambda self, completion, record: float(len(completion) % 2))
    cfg = _cfg("task=zebra", "train.steps=1", "train.save_every=0", "train.prompts_per_step=2", *overrides)
    ws = Workspace(cfg, tmp_path / name)
    ws.run()
    from sec.metrics import read_metrics

    (train,) = [r for r in read_metrics(tmp_path / name / "metrics.jsonl") if r["kind"] == "train"]
    return passes, train, ws


def test_training_passes_hold_at_most_the_token_budget_and_make_the_same_update(tmp_path, monkeypatch):
    """A step's rollouts go through the model in passes of at most backend.micro_batch_tokens
    (padded) tokens, with gradients accumulated into the same optimizer step as one pass."""
    from sec.evaluate import render_prompt

    whole, one_pass, ws = _train_passes(tmp_path, monkeypatch, "whole", "backend.micro_batch_tokens=null")
    rollouts = 2 * int(ws.cfg.algorithm.num_generations)
    assert [rows for rows, _ in whole] == [rollouts]

    texts = [render_prompt(r, ws.tokenizer, str(ws.cfg.model.prompt_format)) for r in ws.train_records]
    longest = max(len(ids) for ids in ws.tokenizer(texts, add_special_tokens=False)["input_ids"])
    budget = 2 * (longest + int(ws.cfg.train.max_completion_length))  # two rollouts per pass
    split, micro, _ = _train_passes(tmp_path, monkeypatch, "split", f"backend.micro_batch_tokens={budget}")
    assert [rows for rows, _ in split] == [2] * (rollouts // 2)
    assert all(tokens <= budget for _, tokens in split), (split, budget)
    # the same rollouts (same seed), the same loss and gradient
    assert micro["reward_mean"] == one_pass["reward_mean"]
    assert one_pass["grad_norm"] > 0
    assert micro["loss"] == pytest.approx(one_pass["loss"], rel=1e-4, abs=1e-7)
    assert micro["grad_norm"] == pytest.approx(one_pass["grad_norm"], rel=1e-4)


def test_plan_batches_keeps_the_row_batches_and_bounds_the_tokens_of_a_call():
    from sec.evaluate import plan_batches

    n_tokens = [100, 300, 120, 650, 640, 90, 200]
    order = list(np.argsort(n_tokens, kind="stable"))
    # no token bound: batch_size // k consecutive prompts, k samples each (the earlier batching)
    calls = plan_batches(n_tokens, k=2, max_new_tokens=64, batch_size=6, max_batch_tokens=None, order=order)
    assert calls == [([int(i) for i in order[s : s + 3]], 2) for s in range(0, 7, 3)]
    for budget in (700, 1500, 3000, 100_000):
        calls = plan_batches(n_tokens, k=4, max_new_tokens=64, batch_size=32, max_batch_tokens=budget, order=order)
        samples = {i: 0 for i in range(len(n_tokens))}
        for idx, n in calls:
            rows, longest = len(idx) * n, max(n_tokens[i] for i in idx)
            assert rows * (longest + 64) <= budget or rows == 1, (budget, idx, n)
            for i in idx:
                samples[i] += n
        assert samples == {i: 4 for i in range(len(n_tokens))}  # every prompt gets its k samples
        assert list(dict.fromkeys(i for idx, _ in calls for i in idx)) == [int(i) for i in order]


def test_evaluation_generate_calls_hold_at_most_the_token_budget(tmp_path):
    """Each ``generate`` call of the evaluation holds at most eval.max_batch_tokens tokens (rows x
    (padded prompt + new tokens)), and every problem still gets its k samples."""
    from sec.evaluate import evaluate

    cfg = _cfg("task=zebra")
    ws = Workspace(cfg, tmp_path)
    ws.setup()
    tmp_path.mkdir(exist_ok=True)
    model, tokenizer = ws.load_model()
    calls: list[int] = []
    generate = model.generate
    new_tokens = 8

    def spy(**kwargs):
        calls.append(
            kwargs["input_ids"].shape[0] * kwargs["num_return_sequences"] * (kwargs["input_ids"].shape[1] + new_tokens)
        )
        return generate(**kwargs)

    model.generate = spy
    budget, k = 3000, 4
    records = evaluate(
        model,
        tokenizer,
        ws.test_records,
        score=ws.eval_score,
        train_levels=[1, 2, 3],
        ood_levels=[4],
        prompt_format=str(cfg.model.prompt_format),
        k=k,
        temperature=1.0,
        max_new_tokens=new_tokens,
        batch_size=64,
        max_problems_per_level=2,
        max_batch_tokens=budget,
        seed=0,
        step=0,
    )
    assert len(calls) > 1 and max(calls) <= budget, calls
    assert {r["split"]: r["n_problems"] for r in records}["id"] == 6
    assert all(r["k_samples"] == k for r in records)


@pytest.mark.slow
def test_peak_memory_benchmark_reads_the_phases_of_a_real_sweep(tmp_path):
    """benchmarks/peak_memory.py runs a real sweep as a subprocess and finds each job and the
    load / train / eval / finish phases in its log lines."""
    import subprocess
    import sys

    from conftest import ROOT

    script = [sys.executable, str(ROOT / "benchmarks" / "peak_memory.py"), "--workdir", str(tmp_path), "--phases"]
    sweep = ["-m", "profile=tiny", "task=countdown", "curriculum=sec,random", "train.steps=2", "train.save_every=0"]
    out = subprocess.run(
        [*script, "--", *sweep],
        capture_output=True,
        text=True,
        check=True,
        timeout=1200,
    ).stdout
    rows = [line.split() for line in out.splitlines() if line.startswith("command ")]
    jobs = [r for r in rows if r[1].startswith("curriculum=")]
    assert [r[1] for r in jobs] == ["curriculum=sec", "curriculum=random"], out
    for r in jobs:
        _start, load, train, evaluation, finish, peak = (float(x) for x in r[2:8])
        assert load > 0 and train > 0 and evaluation > 0 and finish > 0, out
        assert peak >= max(load, train, evaluation, finish) and peak < 8, out
    assert out.count("train steps:") == 2, out
