"""Peak resident memory (RSS) of real sweeps and runs, per job and per phase.

Each command runs as a real subprocess (``sys.executable -m sec.launch ...``, any Hydra
overrides). Its log lines mark where each job and phase starts (Hydra's ``#N : overrides``
line, ``sec.models``' "loading from" / "loaded", ``sec.backends.trl``'s "step t/T",
``sec.evaluate``'s "eval step t ... prompts" / "... in Ns", ``sec.workspace``'s "run finished").
At every mark the peak of the phase that just ended is read from the kernel: the high-water
mark ``VmHWM`` of ``/proc/<pid>/status``, which is then reset by writing ``5`` to
``/proc/<pid>/clear_refs`` (Linux >= 4.0, ``Documentation/filesystems/proc.rst``), so no
short spike between samples is missed. Where that file cannot be written (not Linux), a
sampler thread (psutil, every 50 ms) gives the peak instead. Child processes (data
generation workers, joblib workers) are sampled and added. The last row, ``whole command``,
is the largest of all peaks (what ``/usr/bin/time -v`` reports as maximum resident set size;
where the mark cannot be reset, the kernel's ``ru_maxrss`` of the process).

Jobs are told apart by Hydra's launch line, which the basic (default) launcher prints just
before it runs each job in the same process; a launcher running jobs in parallel
(``hydra/launcher=joblib``) mixes them, and the table is then one row per command.

    python benchmarks/peak_memory.py --preset design_card countdown      # the two sweeps of docs/memory.md
    python benchmarks/peak_memory.py --phases -- -m task=zebra curriculum=sec,random train.steps=2
    python benchmarks/peak_memory.py --log-dir /tmp/pm --preset tiny

Columns (GB = 1e9 bytes): ``start`` the RSS when the job began (what the earlier jobs of the
same process left), ``load`` / ``train`` / ``eval`` / ``finish`` the peak of that phase (train:
the largest step; finish: saving, summary, teardown), ``peak`` the job's peak, ``s`` its wall time.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
GB = 1e9

#: named commands (Hydra overrides of ``python -m sec.launch``) measured in docs/memory.md
PRESETS: dict[str, list[str]] = {
    # the design card's sweep, shrunk (issue 13 item 5)
    "design_card": ["-m", "task=zebra,arc", "curriculum=sec,random", "train.steps=2", "eval.max_problems_per_level=1"],
    # `make sweep`, shrunk the same way
    "countdown": [
        "-m",
        "task=countdown",
        "curriculum=sec,random,ordered",
        "train.steps=2",
        "eval.max_problems_per_level=1",
    ],
    # seconds: a smoke test of this script
    "tiny": ["-m", "profile=tiny", "task=zebra,arc", "curriculum=sec,random"],
}

#: (regex on a log line, phase that starts there); the first match wins
MARKS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\[HYDRA\]\s+#(\d+) : (.*)$"), "job"),
    (re.compile(r"model \S+: loading from"), "load"),
    (re.compile(r"model \S+: loaded"), "train"),
    (re.compile(r"eval step \d+ \(\S+\): \d+ prompts"), "eval"),
    (re.compile(r"eval step \d+ \(\S+\): .* in [\d.]+s"), "train"),
    (re.compile(r"step (\d+)/(\d+) reward"), "train"),
    (re.compile(r"run finished"), "finish"),
]


@dataclass
class Job:
    """One job of a command: its overrides, RSS at its start and peak per phase (bytes)."""

    name: str
    start_rss: int
    t0: float
    peaks: dict[str, int] = field(default_factory=dict)
    steps: list[int] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, phase: str, peak: int) -> None:
        self.peaks[phase] = max(self.peaks.get(phase, 0), peak)

    def summary(self) -> str:
        """One line: the job, its start RSS, phase peaks and steps' peaks (GB), seconds."""
        peaks = " ".join(f"{p} {v / GB:.2f}" for p, v in self.peaks.items())
        steps = " ".join(f"{s / GB:.2f}" for s in self.steps)
        return f"{self.name}: start {self.start_rss / GB:.2f}; {peaks}; steps {steps}; {self.seconds:.0f} s"


class Meter:
    """Peak RSS of a process tree since the last :meth:`take` (kernel high-water mark of the
    root process, reset at each take, plus sampled RSS of its children)."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.pid = pid
        self.sampled = 0
        self.overall = 0
        self.lock = threading.Lock()
        self.kernel_hwm = self._reset_hwm()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _reset_hwm(self) -> bool:
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
            return True
        except OSError:
            return False

    def _hwm(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        return 0

    def rss(self) -> int:
        """Current RSS of the tree (bytes); 0 once the process is gone."""
        try:
            procs = [self.proc, *self.proc.children(recursive=True)]
        except psutil.Error:
            return 0
        total = 0
        for p in procs:
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
        return total

    def _sample(self) -> None:
        while not self.stop.wait(0.05):
            value = self.rss()
            with self.lock:
                self.sampled = max(self.sampled, value)

    def take(self) -> int:
        """Peak RSS (bytes) since the previous take; starts the next interval."""
        with self.lock:
            peak, self.sampled = self.sampled, 0
        if self.kernel_hwm:
            try:
                children = self.rss() - self.proc.memory_info().rss
                peak = max(peak, self._hwm() + max(children, 0))
                self._reset_hwm()
            except (OSError, psutil.Error):
                pass
        self.overall = max(self.overall, peak)
        return peak

    def close(self) -> None:
        self.stop.set()
        self.thread.join()


def measure(cmd: list[str], workdir: Path, log_path: Path | None, echo: bool) -> tuple[list[Job], int, float]:
    """Run ``cmd`` in ``workdir`` (its run dirs go there); returns its jobs, the whole command's
    peak RSS (bytes) and wall seconds.

    Raises:
        RuntimeError: the command exited with a non-zero status (the log's tail is in the message).
    """
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": path}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=workdir)
    meter = Meter(proc.pid)
    jobs: list[Job] = []
    phase, tail = "setup", []
    log = log_path.open("w", buffering=1) if log_path else None
    assert proc.stdout is not None
    for line in proc.stdout:
        if log:
            log.write(line)
        if echo:
            sys.stdout.write(line)
        tail = [*tail[-40:], line]
        phase = _on_line(line.rstrip("\n"), phase, jobs, meter)
    last = meter.take()  # before reaping the process: its /proc entry goes with it
    _, status, usage = os.wait4(proc.pid, 0)  # the child's own rusage, not all children's so far
    proc.returncode = os.waitstatus_to_exitcode(status)
    if jobs:
        jobs[-1].add(phase, last)
        jobs[-1].seconds = time.perf_counter() - jobs[-1].t0
        print(f"#   job done: {jobs[-1].summary()}", flush=True)
    meter.close()
    if log:
        log.close()
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} exited with {proc.returncode}:\n{''.join(tail)}")
    # resetting the high-water mark resets ru_maxrss too: then the largest phase peak is the answer
    whole = meter.overall if meter.kernel_hwm else usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    return jobs, whole, time.perf_counter() - t0


def _on_line(line: str, phase: str, jobs: list[Job], meter: Meter) -> str:
    """Advance the phase on a marked log line; returns the phase now running."""
    for pattern, nxt in MARKS:
        m = pattern.search(line)
        if not m:
            continue
        peak = meter.take()
        if nxt == "job" or not jobs:
            if jobs:
                jobs[-1].add(phase, peak)
                jobs[-1].seconds = time.perf_counter() - jobs[-1].t0
                print(f"#   job done: {jobs[-1].summary()}", flush=True)  # a long sweep shows its rows as it goes
            name = m.group(2) if nxt == "job" else "(single run)"
            jobs.append(Job(name=name, start_rss=meter.rss(), t0=time.perf_counter()))
            return "setup" if nxt == "job" else nxt
        jobs[-1].add(phase, peak)
        if phase == "train" and pattern.pattern.startswith("step"):
            jobs[-1].steps.append(peak)
        return nxt
    return phase


def table(rows: list[tuple[str, list[Job], int, float]], phases: bool) -> str:
    """The result table: one row per job, then the command's max RSS."""
    cols = ("start", "load", "train", "eval", "finish", "peak", "s")
    head = f"{'command':<12} {'job':<58} " + " ".join(f"{c:>6}" for c in cols)
    out = [head, "-" * len(head)]
    for label, jobs, whole, seconds in rows:
        # name a job by the overrides that tell it from the other jobs of its command
        common = set.intersection(*(set(j.name.split()) for j in jobs)) if len(jobs) > 1 else set()
        for j in jobs:
            name = " ".join(o for o in j.name.split() if o not in common) or j.name
            peak = max(j.peaks.values(), default=0)
            cells = [f"{j.peaks[p] / GB:6.2f}" if p in j.peaks else f"{'-':>6}" for p in cols[1:5]]
            row = f"{j.start_rss / GB:6.2f} {' '.join(cells)} {peak / GB:6.2f} {j.seconds:6.0f}"
            out.append(f"{label:<12} {name[:58]:<58} {row}")
            if phases and j.steps:
                out.append(f"{'':<12} {'  train steps: ' + ' '.join(f'{s / GB:.2f}' for s in j.steps):<58}")
        whole_row = f"{'':>34} {whole / GB:6.2f} {seconds:6.0f}"
        out.append(f"{label:<12} {'whole command (peak RSS)':<58} {whole_row}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", nargs="+", choices=sorted(PRESETS), default=[], help="named sweeps to measure")
    ap.add_argument("--phases", action="store_true", help="also print the peak of every training step")
    ap.add_argument("--log-dir", type=Path, default=None, help="keep each command's output here")
    ap.add_argument("--workdir", type=Path, default=None, help="run the commands here (default: a temporary dir)")
    ap.add_argument("--echo", action="store_true", help="print the commands' output as it comes")
    ap.add_argument("overrides", nargs="*", help="one more command: arguments of `python -m sec.launch` (after --)")
    args = ap.parse_args(argv)
    commands = [(name, PRESETS[name]) for name in args.preset]
    if args.overrides:
        commands.append(("command", args.overrides))
    if not commands:
        ap.error("give --preset NAME ... and/or `-- <sec.launch arguments>`")
    if args.log_dir:
        args.log_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="peak_memory_") as tmp:
        workdir = args.workdir or Path(tmp)
        for label, overrides in commands:
            cmd = [sys.executable, "-m", "sec.launch", *overrides]
            print(f"# {label}: {' '.join(cmd[1:])} (in {workdir})", flush=True)
            log_path = args.log_dir / f"{label}.log" if args.log_dir else None
            rows.append((label, *measure(cmd, workdir, log_path, args.echo)))
    load = os.getloadavg()
    print(
        f"\npeak RSS in GB (1e9 bytes); {os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    print(table(rows, args.phases))
    return 0


if __name__ == "__main__":
    sys.exit(main())
