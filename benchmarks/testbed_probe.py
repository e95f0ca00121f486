"""The testbed probe (docs/testbed.md): per level, pass@1 and the share of zero-variance groups at the
rollout temperature, for testbed models pre-trained for different numbers of steps (the difficulty
dial). Prints one table per model.

pass@1 = mean over the first ``--problems`` test problems of a level (the task's own test split) of
the mean correctness of ``--k`` samples at ``--temperature`` (the run's scorer: last number, exact);
*zero-var* = share of those problems whose ``--k`` samples are all right or all wrong (a GRPO group
of ``--k`` rollouts with zero advantage); *greedy* = pass@1 of the greedy answer.

    python benchmarks/testbed_probe.py --steps 500 1000 1500          # builds (cached) and probes
    python benchmarks/testbed_probe.py --steps 1000 --levels 1 2 3 4 5 6 --problems 200 --k 8
    python benchmarks/testbed_probe.py --model smollm2_135m_sft --steps 30 100   # the external check's
                                       # model: SmolLM2-135M after N warm-up SFT steps (sec/models/warmup.py)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path

import numpy as np

from sec.evaluate import generate
from sec.models import testbed, warmup
from sec.models.core import default_config
from sec.models.testbed_train import task_config
from sec.tasks.generation import generate_items
from sec.tasks.rewards import puzzle_reward


def test_problems(task: dict, level: int, n: int) -> list[dict]:
    """The first ``n`` test records of ``level`` (as the task's test split makes them), bare prompts."""
    rows = generate_items(
        task["name"], level, task["levels"][level], n, int(task["seed"]), "test", workers=1, progress=False,
    )  # fmt: skip
    return rows


def _score(completion: str, record: dict, extraction: str = "last_number") -> float:
    """The run's validation score: the answer extracted by ``extraction`` (the task's
    ``answer_extraction``) is correct."""
    return puzzle_reward(completion, record, train=False, format_reward=0.0, extraction=extraction)


def probe_level(
    model, tok, rows: list[dict], k: int, temperature: float, extraction: str = "last_number"
) -> dict[str, float]:
    """pass@1 (k samples), its standard error over problems, zero-variance share and greedy pass@1."""
    import torch

    prompts = [r["prompt"] for r in rows]
    torch.manual_seed(0)
    samples = generate(model, tok, prompts, k=k, temperature=temperature, max_new_tokens=8, batch_size=1024)
    score = np.array([[_score(c, r, extraction) for c in cs] for r, cs in zip(rows, samples, strict=True)])
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**enc, do_sample=False, max_new_tokens=8, pad_token_id=tok.pad_token_id)
    greedy = tok.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    per_problem = score.mean(axis=1)
    return {
        "pass@1": float(per_problem.mean()),
        "stderr": float(per_problem.std(ddof=1) / np.sqrt(len(per_problem))),
        "zero_var": float(np.mean((per_problem == 0) | (per_problem == 1))),
        "greedy": float(np.mean([_score(g, r, extraction) for g, r in zip(greedy, rows, strict=True)])),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="testbed_lm")
    ap.add_argument("--steps", type=int, nargs="+", default=[1000], help="pre-training steps (the dial)")
    ap.add_argument("--set", nargs="*", default=[], help="more model overrides, e.g. pretrain.seed=1")
    ap.add_argument("--levels", type=int, nargs="*", default=None, help="default: every level of the task")
    ap.add_argument("--problems", type=int, default=200)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rl-steps", type=int, default=0, help="also time N real GRPO steps per model (sec.launch)")
    ap.add_argument("--rl", nargs="*", default=["experiment=testbed", "profile=testbed", "curriculum=random"])
    args = ap.parse_args()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("sec.tasks").setLevel(logging.WARNING)
    torch.set_num_threads(args.threads)
    cache = os.environ.get("SEC_CACHE_DIR") or str(Path.home() / ".cache" / "sec")
    # the dial: pre-training steps (source: pretrain) or warm-up SFT steps (source: sft)
    sft = default_config(args.model).get("source") == "sft"
    key = "sft" if sft else "pretrain"
    if not sft:  # every point of the dial in one pre-training pass (sec/models/testbed_train.py)
        first = default_config(args.model, [f"pretrain.steps={min(args.steps)}", *args.set])
        testbed.materialise(first, cache, steps=args.steps)
    for steps in args.steps:
        cfg = default_config(args.model, [f"{key}.steps={steps}", *args.set])
        task = task_config(cfg[key]["task"])
        path = warmup.materialise(cfg, cache) if sft else testbed.materialise(cfg, cache)
        record = json.loads((path / (warmup.SFT_RECORD if sft else testbed.PRETRAIN_RECORD)).read_text())
        model = AutoModelForCausalLM.from_pretrained(path)
        tok = AutoTokenizer.from_pretrained(path, padding_side="left")
        print(
            f"\nmodel {path.name}: {key} steps {steps} ({record['seconds']:.0f} s to build), "
            f"mix {record['mix']}, final loss {record['loss'][-1][1]:.4f}; k={args.k} at temperature "
            f"{args.temperature}, {args.problems} test problems per level"
        )
        print("level  kwargs                                   pass@1  ±stderr  zero-var  greedy  seconds")
        for level in args.levels or sorted(task["levels"]):
            t0 = time.perf_counter()
            res = probe_level(model, tok, test_problems(task, level, args.problems), args.k, args.temperature)
            kw = task["levels"][level]
            desc = f"{kw['min_terms']} terms, {kw['min_digits']}-digit, {' '.join(kw['operators'])}"
            print(
                f"L{level:<5} {desc:<40} {res['pass@1']:.3f}   {res['stderr']:.3f}    {res['zero_var']:.3f}     "
                f"{res['greedy']:.3f}   {time.perf_counter() - t0:.1f}"
            )
        if args.rl_steps:
            print(rl_step_time(path, args.rl_steps, args.rl))


def rl_step_time(model_path: Path, steps: int, overrides: list[str]) -> str:
    """Run ``steps`` real GRPO steps of the benchmark's settings (``python -m sec.launch``, the model at
    ``model_path``, no evaluation) and report the wall time per step (median over steps 2.., from
    metrics.jsonl), the run's CPU time per step (its process tree, startup included) and the load."""
    import resource
    import subprocess
    import sys
    import tempfile

    from sec.metrics import read_metrics

    with tempfile.TemporaryDirectory() as tmp:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "sec.launch", *overrides, "model.source=local", f"+model.local_path={model_path}",
             f"train.steps={steps}", "eval.every=0", "eval.at_start=false", "train.save_every=0",
             f"hydra.run.dir={tmp}/run"],
            check=True, capture_output=True,
        )  # fmt: skip
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        times = [r["wall_time_s"] for r in read_metrics(Path(tmp) / "run" / "metrics.jsonl") if r["kind"] == "train"]
    load = os.getloadavg()[0]
    return (
        f"RL ({' '.join(overrides)}): {steps} steps, median {np.median(times[1:]):.2f} s/step wall; whole run "
        f"{wall:.0f} s wall, {cpu:.0f} s CPU ({cpu / steps:.2f} s CPU per step, startup and final eval included); "
        f"load average {load:.1f} on {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main()
