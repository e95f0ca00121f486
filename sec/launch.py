"""Hydra entry point: ``python -m sec.launch [overrides]``; ``-m`` runs a sweep through the
configured launcher (local by default), one run dir per job.

Examples::

    python -m sec.launch task=zebra curriculum=sec
    python -m sec.launch -m task=zebra,arc curriculum=sec,random
    python -m sec.launch -m hydra/launcher=slurm task=zebra,arc curriculum=sec,random   # SLURM array
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def main(cfg: DictConfig) -> float | None:
    """Run one job; returns the final ID pass@1 (the value sweepers optimise)."""
    from sec.workspace import Workspace

    logging.getLogger("sec").setLevel(logging.INFO)
    summary = Workspace(cfg, HydraConfig.get().runtime.output_dir).run()
    return summary.get("id pass@1")


if __name__ == "__main__":
    main()
