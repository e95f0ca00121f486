"""Files of one verl run inside its run dir (``<run_dir>/verl/``, ``<run_dir>/checkpoints/``).

The launcher writes the parquet files and ``sec_spec.json``; the dataset inside verl's trainer
(:mod:`sec.backends.verl_ext`) reads the spec and writes the curriculum log; verl's ``file``
logger writes ``verl_metrics.jsonl``; the launcher writes ``save_request`` when SLURM's
preemption signal arrives (the dataset then makes verl save at its next checkpoint point).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sec import rundir

#: the spec the dataset reads, beside the training parquet
SPEC = "sec_spec.json"
#: verl's resume tracker (``RayPPOTrainer._load_checkpoint`` with ``resume_mode=auto``)
TRACKER = "latest_checkpointed_iteration.txt"
#: written by the launcher on SLURM's preemption signal; read by the dataset after every step
SAVE_REQUEST = "save_request"


@dataclass(frozen=True)
class VerlPaths:
    """Files of one verl run inside its run dir."""

    root: Path
    checkpoints: Path

    @property
    def train_file(self) -> Path:
        return self.root / "train.parquet"

    @property
    def val_file(self) -> Path:
        return self.root / "val.parquet"

    @property
    def spec(self) -> Path:
        return self.root / SPEC

    @property
    def verl_log(self) -> Path:
        """verl's ``file`` logger output (``{"step": t, "data": {...}}`` per line)."""
        return self.root / "verl_metrics.jsonl"

    @property
    def curriculum_log(self) -> Path:
        """the dataset's draw / update records (``{"step": t, "phase": ..., ...}`` per line)."""
        return self.root / "curriculum_metrics.jsonl"

    @property
    def command(self) -> Path:
        return self.root / "command.sh"

    @property
    def process_log(self) -> Path:
        """verl's stdout and stderr."""
        return self.root / "verl.log"

    @property
    def save_request(self) -> Path:
        return self.root / SAVE_REQUEST

    @property
    def tracker(self) -> Path:
        return self.checkpoints / TRACKER


def verl_paths(run_dir: str | Path) -> VerlPaths:
    """The verl files of the run dir ``run_dir``."""
    run_dir = Path(run_dir).resolve()
    return VerlPaths(root=run_dir / "verl", checkpoints=run_dir / rundir.CHECKPOINTS)
