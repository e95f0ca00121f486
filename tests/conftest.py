"""Test settings: no network, one shared cache for generated data and tiny models."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("SEC_EVAL_DATA_DIR", str(ROOT / "tests" / "data"))
    # one cache per test session unless the caller keeps one across sessions
    if "SEC_CACHE_DIR" not in os.environ:
        os.environ["SEC_CACHE_DIR"] = str(ROOT / ".cache" / "test")


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    return Path(os.environ["SEC_CACHE_DIR"])


def slurm_unavailable() -> str | None:
    """Why SLURM cannot run jobs here, or None when it can (a node up, accounting working)."""
    for tool in ("srun", "sbatch", "sinfo", "sacct", "scontrol", "scancel"):
        if shutil.which(tool) is None:
            return f"`{tool}` not found"
    try:
        states = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True, timeout=20)
        acct = subprocess.run(["sacct", "-n", "-X", "-S", "now"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "sinfo/sacct time out"
    if states.returncode != 0:
        return f"sinfo fails: {states.stderr.strip()[:200]}"
    if not {"idle", "mixed", "allocated", "completing"} & set(states.stdout.split()):
        return f"no node up (sinfo: {states.stdout.split() or 'none'})"
    if acct.returncode != 0:
        return f"sacct fails (no accounting): {acct.stderr.strip()[:200]}"
    return None


@pytest.fixture(scope="session")
def slurm() -> None:
    """A running SLURM for tests marked ``slurm``: skipped without one, failed in CI (``CI=true``)."""
    reason = slurm_unavailable()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI needs a running SLURM, but {reason}; .ci/run starts one with scripts/slurm_local.sh start")
    pytest.skip(f"no local SLURM ({reason}); `bash scripts/slurm_local.sh start` runs one on this machine")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test that uses the ``slurm`` fixture carries the ``slurm`` marker (what
    ``-m slurm`` / ``-m "not slurm"`` select on), and vice versa."""
    for item in items:
        uses = "slurm" in getattr(item, "fixturenames", ())
        marked = item.get_closest_marker("slurm") is not None
        if uses != marked:
            raise pytest.UsageError(f"{item.nodeid}: the `slurm` fixture and the `slurm` marker go together")


@pytest.fixture
def guard_state(monkeypatch):
    """A fresh process-wide preemption-guard state (sec/preempt.py keeps one per process, as a
    job has); the signal's handler is restored afterwards."""
    from sec import preempt

    monkeypatch.setattr(preempt, "_STATE", preempt._Shared())
    previous = signal.getsignal(signal.SIGUSR2)
    yield
    signal.signal(signal.SIGUSR2, previous)
