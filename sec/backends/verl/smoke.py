"""The first run on a GPU cluster (or, with ``backend.device=cpu``, on this machine's CPU), with
one verdict line.

``python -m sec.backends.verl.smoke [--run-dir DIR] [--interrupt int|kill] [override ...]`` runs
``python -m sec.launch profile=smoke backend=verl`` (conf/profile/smoke.yaml: 1 GPU, SmolLM2-135M,
4 SEC steps, checkpoints at steps 2 and 4, evaluation at steps 2 and 4), interrupts it (SIGINT,
as Ctrl-C would, or SIGKILL to its process group with ``--interrupt kill``) once the step-2
checkpoint is complete, runs the same command again (it resumes there) and then checks the run
dir (:func:`check_run`). ``backend.device=cpu`` runs the same code path on the CPU (verl's own
trainer loop; rollout engine ``hf`` instead of vLLM, gloo instead of NCCL: docs/verl.md):

* ``metrics.jsonl`` has one train record per step and eval records (``id``) at the eval steps;
* the curriculum's values moved and every step but the last was fed back
  (``curriculum/fed_back``);
* each draw used the values of the previous step's update (``verl/curriculum_metrics.jsonl``),
  across the resume too: the first draw after it used the values the step-2 record holds;
* the second attempt resumed from the checkpoint, and the run finished (``done.json``).

It prints ``verl smoke: PASS ...`` or ``verl smoke: FAIL <check>: <why>`` and exits 0 / 1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sec import rundir

#: the smoke run's shape (conf/profile/smoke.yaml)
STEPS, EVAL_EVERY, RESUME_STEP = 4, 2, 2
_Q = re.compile(r"^curriculum/(?P<arm>.+)/q$")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _q(record: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in record.items() if _Q.match(k)}


def _check_records(train: list[dict], evals: list[dict], steps: int, eval_every: int) -> list[Check]:
    got = [int(r["step"]) for r in train]
    want_evals = sorted({*range(eval_every, steps + 1, eval_every), steps})
    id_steps = sorted({int(r["step"]) for r in evals if r.get("split") == "id"})
    bad = [r for r in evals if not 0.0 <= float(r.get("pass@1", -1)) <= 1.0]
    return [
        Check("train records", got == list(range(1, steps + 1)), f"train steps {got}, want 1..{steps} once each"),
        Check("eval records", id_steps == want_evals and not bad, f"id eval at steps {id_steps}, want {want_evals}"),
    ]


def _check_curriculum(train: list[dict], log: list[dict], steps: int) -> list[Check]:
    qs = [_q(r) for r in train]
    moved = bool(qs) and bool(qs[0]) and any(qs[-1].get(k) != qs[0][k] for k in qs[0])
    unfed = [int(r["step"]) for r in train if int(r["step"]) < steps and not r.get("curriculum/fed_back")]
    draws = {int(r["step"]): _q(r) for r in log if r.get("phase") == "draw"}
    updates = {int(r["step"]): _q(r) for r in log if r.get("phase") == "update"}
    pairs = [(t, draws[t + 1] == updates[t]) for t in sorted(updates) if t + 1 in draws]
    return [
        Check(
            "curriculum moved",
            moved,
            f"Q values at step 1 {qs[0] if qs else {}}, at the last step {qs[-1] if qs else {}}",
        ),
        Check("curriculum fed back", not unfed, f"steps without feedback: {unfed}"),
        Check(
            "feedback reaches the next draw",
            bool(pairs) and all(ok for _, ok in pairs),
            f"draw(t+1) == update(t) for t in {[t for t, _ in pairs]}: {[ok for _, ok in pairs]}",
        ),
    ]


def _check_resume(run_dir: Path, train: list[dict], log: list[dict], resumed_from: int) -> list[Check]:
    text = (run_dir / "smoke" / "attempt2.log").read_text() if (run_dir / "smoke" / "attempt2.log").exists() else ""
    said = f"resuming from step {resumed_from}" in text
    saved = {int(r["step"]): _q(r) for r in train}.get(resumed_from)
    first = next((_q(r) for r in log if r.get("phase") == "draw" and int(r["step"]) == resumed_from + 1), None)
    return [
        Check(
            "resumed from the checkpoint", said, f"'resuming from step {resumed_from}' in smoke/attempt2.log: {said}"
        ),
        Check(
            "curriculum state resumed",
            saved is not None and first == saved,
            f"first draw after the resume {first}, step {resumed_from} record {saved}",
        ),
        Check("run finished", (run_dir / rundir.DONE).exists(), f"{rundir.DONE} exists"),
    ]


def check_run(
    run_dir: str | Path, steps: int = STEPS, eval_every: int = EVAL_EVERY, resumed_from: int = RESUME_STEP
) -> list[Check]:
    """The smoke run's checks (module doc) on a run dir; nothing is written."""
    run_dir = Path(run_dir)
    records = _jsonl(run_dir / rundir.METRICS)
    train = sorted((r for r in records if r.get("kind") == "train"), key=lambda r: int(r["step"]))
    evals = [r for r in records if r.get("kind") == "eval"]
    log = _jsonl(run_dir / "verl" / "curriculum_metrics.jsonl")
    return [
        *_check_records(train, evals, steps, eval_every),
        *_check_curriculum(train, log, steps),
        *_check_resume(run_dir, train, log, resumed_from),
    ]


def verdict(checks: Sequence[Check], run_dir: str | Path) -> str:
    """One line: PASS with the number of checks, or FAIL with the first failing check."""
    failed = [c for c in checks if not c.ok]
    if failed:
        first = failed[0]
        return (
            f"verl smoke: FAIL {first.name}: {first.detail} ({len(failed)} of {len(checks)} checks failed; {run_dir})"
        )
    return f"verl smoke: PASS ({len(checks)} checks: train/eval records, curriculum fed back, resume; {run_dir})"


#: how the first attempt is interrupted: ``int`` = SIGINT to the launcher (Ctrl-C: it stops verl
#: itself), ``kill`` = SIGKILL to the launcher's process group (``kill -9``, an OOM kill: verl dies
#: with it, sec/backends/verl/launch.py)
INTERRUPTS = {"int": signal.SIGINT, "kill": signal.SIGKILL}


def _attempt(command: list[str], log: Path, interrupt_at: Path | None, timeout_s: float, interrupt: str = "int") -> int:
    """Run ``command`` (output to ``log``) in a session of its own; with ``interrupt_at``,
    interrupt it (:data:`INTERRUPTS`) once that file exists."""
    with log.open("w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while proc.poll() is None and time.monotonic() < deadline:
            if interrupt_at is not None and interrupt_at.exists():
                if interrupt == "kill":
                    os.killpg(proc.pid, signal.SIGKILL)
                else:
                    proc.send_signal(signal.SIGINT)  # the launcher stops verl and keeps the checkpoint
                interrupt_at = None
            time.sleep(0.5)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=120)
        return proc.returncode


def run_smoke(run_dir: Path, overrides: Sequence[str], timeout_s: float, interrupt: str = "int") -> str:
    """Run the two attempts (module doc) and return the verdict line."""
    (run_dir / "smoke").mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "sec.launch",
        "profile=smoke",
        "backend=verl",
        f"hydra.run.dir={run_dir}",
        *overrides,
    ]
    marker = run_dir / rundir.CHECKPOINTS / f"global_step_{RESUME_STEP}" / rundir.CURRICULUM_STATE
    _attempt(command, run_dir / "smoke" / "attempt1.log", marker, timeout_s, interrupt)
    if not marker.exists():
        tail = (run_dir / "smoke" / "attempt1.log").read_text().strip().splitlines()[-1:] or ["no output"]
        where = run_dir / "smoke" / "attempt1.log"
        return (
            f"verl smoke: FAIL first attempt: no complete step-{RESUME_STEP} checkpoint ({tail[0][:200]}; see {where})"
        )
    code = _attempt(command, run_dir / "smoke" / "attempt2.log", None, timeout_s)
    if code != 0:
        where = f"{run_dir}/smoke/attempt2.log, {run_dir}/verl/verl.log"
        return f"verl smoke: FAIL second attempt: exit code {code} (see {where})"
    return verdict(check_run(run_dir), run_dir)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", type=Path, default=Path("outputs/verl_smoke"))
    parser.add_argument("--check-only", action="store_true", help="check an existing run dir, run nothing")
    parser.add_argument("--timeout-s", type=float, default=3600.0, help="per attempt")
    parser.add_argument(
        "--interrupt",
        choices=sorted(INTERRUPTS),
        default="int",
        help="how the first attempt is stopped after its step-2 checkpoint: SIGINT (Ctrl-C) or SIGKILL (kill -9)",
    )
    parser.add_argument("overrides", nargs="*", help="extra sec.launch overrides, e.g. model=qwen2.5_3b")
    args = parser.parse_args(argv)
    run_dir = args.run_dir.resolve()
    line = (
        verdict(check_run(run_dir), run_dir)
        if args.check_only
        else run_smoke(run_dir, args.overrides, args.timeout_s, args.interrupt)
    )
    print(line)
    return 0 if " PASS " in line else 1


if __name__ == "__main__":
    sys.exit(main())
