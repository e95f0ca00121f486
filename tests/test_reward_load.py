"""A correct answer's score does not depend on what else is being checked (issue 24): a burst of
hostile and correct Math answers from more threads than the pool's first workers, on a cold pool
(a fresh process), through verl's reward function and through the TRL backend's; every correct
answer scores 1, every hostile one is stopped by its own check's bound (sec/tasks/bounded.py,
docs/rewards.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT
from sec.tasks.math import VERIFY_TIMEOUT_S

#: the reproducer of issue 24 in a fresh process (a cold pool), through the named path
CHILD = r"""
import json, logging, random, sys, time
from concurrent.futures import ThreadPoolExecutor
logging.disable(logging.ERROR)
from sec.tasks.math import verifier_pool
path = sys.argv[1]
if path == "verl":
    from sec.backends.verl_ext import compute_score
    INFO = {"task": "math", "format_reward": 0.0, "answer_extraction": "boxed"}
    def score(pred, gold):
        truth = json.dumps({"generator": "math", "answer": gold})
        o = compute_score("math/level_1", f"\\boxed{{{pred}}}", truth, dict(INFO))
        return o["acc"], o["reward_timeout"]
else:
    from sec.tasks.rewards import score_completion
    def score(pred, gold):
        record = {"task": "math", "answer": json.dumps({"generator": "math", "answer": gold})}
        s = score_completion(f"\\boxed{{{pred}}}", record, extraction="boxed")
        return s.reward(train=True, format_reward=0.0), float(s.timed_out)
pool = verifier_pool()
def call(job):
    pred, gold = job
    t = time.perf_counter()
    acc, timeout = score(pred, gold)
    wait, check = pool.last_timing()
    return pred, acc, timeout, wait, check, time.perf_counter() - t
first = call(("\\frac{1}{2}", "0.5"))  # starts the pool (its first workers), as the issue's reproducer does
jobs = [("9^{9^{9}}", "1")] * 16 + [("\\frac{1}{2}", "0.5")] * 32
random.Random(1).shuffle(jobs)
with ThreadPoolExecutor(6) as ex:
    out = list(ex.map(call, jobs))
print(json.dumps({"first": first, "burst": out, "workers": pool.n_workers}))
"""


@pytest.mark.parametrize("path", ["verl", "trl"])
def test_a_burst_on_a_cold_pool_scores_every_correct_answer_1(path):
    r = subprocess.run(
        [sys.executable, "-c", CHILD, path], cwd=ROOT, capture_output=True, text=True, timeout=600,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(r.stdout.strip().splitlines()[-1])
    burst = result["burst"]
    correct = [c for c in burst if c[0] == "\\frac{1}{2}"]
    hostile = [c for c in burst if c[0] != "\\frac{1}{2}"]
    assert len(correct) == 32 and len(hostile) == 16
    assert [(c[1], c[2]) for c in correct] == [(1.0, 0.0)] * 32, correct  # scored 1, never a timeout
    assert [(c[1], c[2]) for c in hostile] == [(0.0, 1.0)] * 16, hostile  # stopped: 0, a timeout of its own
    # each check's own work within its bound (plus the kill and pipes; this machine runs other jobs)
    assert all(c[4] < VERIFY_TIMEOUT_S + 0.5 for c in burst), max(c[4] for c in burst)


def test_a_process_that_exits_while_workers_start_logs_no_start_failure():
    code = (
        "import logging, sys, threading, time\n"
        "logging.basicConfig(level=logging.INFO)\n"
        "from sec.tasks.math import verifier_pool\n"
        "threading.Thread(target=verifier_pool().start, daemon=True).start()\n"
        "time.sleep(0.3)\n"
        "sys.exit(0)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "did not start" not in r.stderr, r.stderr[-2000:]
