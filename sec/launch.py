"""Hydra entry point: ``python -m sec.launch [overrides]``; ``-m`` runs a sweep through the
configured launcher (local by default), one run dir per job.

Examples::

    python -m sec.launch task=zebra curriculum=sec
    python -m sec.launch -m task=zebra,arc curriculum=sec,random
    python -m sec.launch -m hydra/launcher=slurm task=zebra,arc curriculum=sec,random   # SLURM array

An invalid combination (e.g. ``curriculum=sec_2d`` on a single task) is rejected with one line:
a single run exits with status 1; in a sweep the job writes ``rejected.json`` in its run dir, the
other jobs run, and :class:`SweepReport` lists the rejected jobs at the end (exit status 1).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")
REJECTED = "rejected.json"

log = logging.getLogger("sec.launch")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def main(cfg: DictConfig) -> float | None:
    """Run one job; returns the final ID pass@1 (the value sweepers optimise), None if rejected.

    Raises:
        SystemExit: a single run (not a sweep) with an invalid config, with a one-line message.
    """
    from sec.errors import ConfigError
    from sec.workspace import Workspace

    logging.getLogger("sec").setLevel(logging.INFO)
    hc = HydraConfig.get()
    out = Path(hc.runtime.output_dir)
    (out / REJECTED).unlink(missing_ok=True)  # a rerun judges the config afresh
    try:
        summary = Workspace(cfg, out).run()
    except ConfigError as exc:
        if hc.mode != RunMode.MULTIRUN:
            raise SystemExit(f"sec.launch: invalid config: {exc}") from None
        overrides = list(hc.overrides.task)
        log.error("rejected job %s: %s", " ".join(overrides), exc)
        (out / REJECTED).write_text(json.dumps({"overrides": overrides, "reason": str(exc)}, indent=2))
        return None
    return summary.get("id pass@1")


class SweepReport(Callback):
    """Hydra callback (``hydra.callbacks`` in ``conf/config.yaml``): after a sweep, one line per
    rejected job (from its ``rejected.json``) and exit status 1 if any was rejected."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        rejected = sorted(sweep_dir.glob(f"*/{REJECTED}"))
        if not rejected:
            return
        jobs = [json.loads(p.read_text()) for p in rejected]
        total = len([p for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith(".")])
        for job in jobs:
            log.error("rejected: %s (%s)", " ".join(job["overrides"]), job["reason"])
        raise SystemExit(f"sec.launch: {len(jobs)} of {total} jobs rejected as invalid configs; the others ran")


if __name__ == "__main__":
    main()
