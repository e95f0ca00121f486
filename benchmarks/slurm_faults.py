"""What a preemption, a time limit, a kill and a node failure cost a run on SLURM, measured.

Runs one uninterrupted reference job and one job per fault on a real SLURM (the local one of
``scripts/slurm_local.sh start``), all the same run (same profile, seed, steps) in one sweep
dir, each fault injected through SLURM when the run has finished ``--at`` steps:

* ``preemption``: ``scancel --signal=USR2`` (what SLURM's preemption / time-limit warning
  sends); the run checkpoints after the step it is in and submitit requeues the job;
* ``time limit``: SLURM's own: ``slurm.timeout_min`` so short that the limit falls mid-run,
  ``--signal=USR2@<signal_delay_s>`` before it; the job requeues (``max_num_timeout``) as often
  as it takes;
* ``kill``: ``scancel`` (SIGTERM, then SIGKILL after SLURM's ``KillWait``), as a user or an
  out-of-memory kill; no requeue: the sweep is rerun (here at once) and resumes the run;
* ``node failure``: ``scontrol update State=DOWN`` on the job's node, then back up after 5 s;
  SLURM kills the job and requeues it (``JobRequeue=1``) without any signal to the run.

For each it prints the SLURM attempts, the steps done twice (a step is counted once per
attempt that logged it), the time from the fault until the run trains again (and how much of
it the job spent queued), the wall time of the whole run against the reference, and whether a
person had to act. Periodic checkpoints every ``--save-every`` steps. A cancelled job's run
goes on for SLURM's ``KillWait`` (10 s on the local cluster, 30 s by default) after SIGTERM,
which submitit ignores: it may reach a checkpoint in that time.

    python benchmarks/slurm_faults.py [--profile tiny] [--steps 40] [--save-every 10] [--at 13]

Needs root for ``scontrol update`` (the node-failure case; skipped otherwise). Other jobs on
the machine slow every row alike: the load average is printed with the table.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

STEP_LINE = re.compile(r"^\[(?P<t>[\d-]+ [\d:,]+)\]\[sec\.backends\.trl\]\[INFO\] - step (?P<step>\d+)/", re.M)


def launch(sweep_dir: Path, tag: str, overrides: list[str]) -> tuple[subprocess.Popen, list[str]]:
    """``sec.launch -m hydra/launcher=slurm`` for one job in the background; its output lines."""
    cmd = [sys.executable, "-m", "sec.launch", "-m", "hydra/launcher=slurm", *overrides, f"tag={tag}"]
    cmd.append(f"hydra.sweep.dir={sweep_dir}")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()  # type: ignore[arg-type]
    return proc, lines


def job_id(lines: list[str], timeout: float = 300) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = re.findall(r"#0 : .*? -> SLURM job (\S+) \(log", "".join(lines))
        if found:
            return found[-1]
        time.sleep(0.2)
    raise RuntimeError("the job was not submitted:\n" + "".join(lines)[-2000:])


def run_dir_of(sweep_dir: Path, tag: str, timeout: float = 600) -> Path:
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = [p for p in sweep_dir.glob("0_*") if f"tag={tag}" in p.name and (p / "launch.log").exists()]
        if found:
            return found[0]
        time.sleep(0.5)
    raise RuntimeError(f"no run dir for tag={tag}")


def wait_for_step(run_dir: Path, step: int, proc: subprocess.Popen, timeout: float = 1200) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if any(int(m["step"]) >= step for m in STEP_LINE.finditer((run_dir / "launch.log").read_text())):
            return
        time.sleep(0.2)
    raise RuntimeError(f"{run_dir.name} never reached step {step}")


def attempts(job: str, timeout: float = 60) -> list[tuple[str, float, float]]:
    """``(state, start, end)`` of each attempt of ``job`` (``sacct -D``; epoch seconds), once
    none is still running: submitit hands the result over a moment before SLURM records the end."""
    deadline = time.time() + timeout
    while True:
        cmd = ["sacct", "-n", "-X", "-P", "-D", "-j", job, "-o", "State,Start,End"]
        rows = [line.split("|") for line in subprocess.run(cmd, capture_output=True, text=True).stdout.split("\n")]
        rows = [r for r in rows if len(r) == 3]
        if time.time() > deadline or not any(r[0] in ("RUNNING", "PENDING", "COMPLETING") for r in rows):
            return [(st.split()[0], iso(a), iso(b)) for st, a, b in rows]
        time.sleep(1)


def iso(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S").timestamp() if text[:1].isdigit() else float("nan")


def stats(run_dir: Path, tries: list[tuple[str, float, float]], t_fault: float) -> dict[str, float]:
    """Steps logged in all attempts (a step redone after a fault is logged again); ``down_s``
    from the fault to the first step of the next attempt, of which ``queued_s`` between
    attempts (SLURM's requeue delay and the queue, or the rerun)."""
    text = (run_dir / "launch.log").read_text()
    logged = [stamp(m["t"]) for m in STEP_LINE.finditer(text)]
    if t_fault != t_fault:  # the time limit: SLURM's signal, as the run logged it
        caught = re.search(r"^\[([\d-]+ [\d:,]+)\]\[sec\.preempt\]\[WARNING\] - caught", text, re.M)
        t_fault = stamp(caught.group(1)) if caught else float("nan")
    if len(tries) < 2:
        return {"steps_logged": len(logged), "down_s": 0.0, "queued_s": 0.0}
    back = min((t for t in logged if t >= tries[1][1]), default=float("nan"))
    return {"steps_logged": len(logged), "down_s": back - t_fault, "queued_s": tries[1][1] - tries[0][2]}


def stamp(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def node_of(job: str) -> str:
    return subprocess.run(["squeue", "-h", "-j", job, "-o", "%N"], capture_output=True, text=True).stdout.strip()


def inject(fault: str, job: str) -> str:
    """Inject ``fault`` into the running ``job``; returns what a person had to do afterwards."""
    if fault == "preemption":
        subprocess.run(["scancel", "--signal=USR2", job], check=True)
        return "none"
    if fault == "kill":
        subprocess.run(["scancel", job], check=True)
        return "rerun the sweep"
    if fault == "node failure":
        node = node_of(job)
        subprocess.run(["scontrol", "update", f"NodeName={node}", "State=DOWN", "Reason=sec-benchmark"], check=True)
        time.sleep(5)  # back up (with ReturnToService=2 it may already be: then this fails harmlessly)
        subprocess.run(["scontrol", "update", f"NodeName={node}", "State=RESUME"], capture_output=True)
        return "none"
    raise ValueError(fault)


def measure(fault: str, sweep_dir: Path, base: list[str], args: argparse.Namespace) -> dict[str, object]:
    """One job with ``fault`` injected at step ``args.at`` (``reference``: none; ``time
    limit``: SLURM's own); reruns the sweep when the fault needs it."""
    tag = fault.replace(" ", "_")
    overrides = list(base)
    if fault == "time limit":
        overrides += [f"slurm.timeout_min={args.limit_min}", f"slurm.signal_delay_s={args.limit_signal_s}"]
    t0, t_fault = time.time(), float("nan")
    proc, lines = launch(sweep_dir, tag, overrides)
    run_dir = run_dir_of(sweep_dir, tag)
    job, action = job_id(lines), "none"
    if fault not in ("reference", "time limit"):
        wait_for_step(run_dir, args.at, proc)
        t_fault = time.time()
        action = inject(fault, job)
    proc.wait()
    wall = time.time() - t0
    tries = attempts(job)
    if action == "rerun the sweep":  # at once (the time a person takes to notice is not counted)
        t1 = time.time()
        proc, lines = launch(sweep_dir, tag, overrides)
        job2 = job_id(lines)
        proc.wait()
        wall += time.time() - t1
        tries += attempts(job2)
    states = " ".join(st for st, _, _ in tries)
    return {"fault": fault, "job": job, "states": states, "action": action, "wall_s": wall,
            **stats(run_dir, tries, t_fault)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="tiny")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--save-every", type=int, default=10)
    ap.add_argument("--at", type=int, default=13, help="inject each fault once the run has logged this step")
    ap.add_argument("--limit-min", type=int, default=2, help="time limit of the `time limit` job (minutes)")
    ap.add_argument("--limit-signal-s", type=int, default=60, help="its USR2 this long before the limit")
    ap.add_argument("--faults", nargs="*", default=["reference", "preemption", "time limit", "kill", "node failure"])
    args = ap.parse_args()
    if os.geteuid() != 0 and "node failure" in args.faults:
        args.faults.remove("node failure")
        print("not root: the node-failure case is skipped")
    base = [f"profile={args.profile}", "task=countdown", "curriculum=sec", f"train.steps={args.steps}"]
    base += [f"train.save_every={args.save_every}", "eval.every=0", "slurm.max_num_timeout=5"]
    sweep_dir = Path(tempfile.mkdtemp(prefix="slurm_faults_"))
    rows = []
    for fault in args.faults:
        rows.append(measure(fault, sweep_dir, base, args))
        print(f"{fault}: {rows[-1]}", flush=True)
    ref = next((r["wall_s"] for r in rows if r["fault"] == "reference"), None)
    load = os.getloadavg()
    print(f"\n{args.profile} profile, {args.steps} steps, checkpoint every {args.save_every}, fault at step {args.at};")
    print(f"{datetime.now():%Y-%m-%d %H:%M}, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}; {sweep_dir}\n")
    print("| fault | SLURM attempts | steps done twice | fault to training again (s) | of which queued (s) "
          "| wall time (s) | vs reference (s) | person had to |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        extra = "" if ref is None else f"{r['wall_s'] - ref:+.0f}"
        redone = int(r["steps_logged"]) - args.steps
        print(
            f"| {r['fault']} | {r['states']} | {redone} | {r['down_s']:.0f} | {r['queued_s']:.0f} | "
            f"{r['wall_s']:.0f} | {extra} | {r['action']} |"
        )


if __name__ == "__main__":
    main()
