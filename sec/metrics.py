"""Per-run metrics: ``metrics.jsonl`` (the schema every backend writes) and optional wandb.

Schema (one JSON object per line, always with ``step`` and ``kind``):

* ``kind: "train"`` — one per optimizer step: ``reward_mean``, ``zero_variance_frac`` (share
  of groups whose rollouts all got the same reward, so zero advantage), ``response_length``,
  ``step_time_s``, ``generation_s`` (the step's rollouts with their rewards: TRL's
  ``_generate_and_score_completions``, verl's ``timing_s/gen``), ``curriculum/<arm>/{q,prob,count,reward}``,
  ``curriculum/sampled_level_mean``, engine extras under ``trl/`` or ``verl/``.
* ``kind: "eval"`` — one per (task, split): ``task``, ``split`` (``id``, ``ood`` or
  ``level_<k>``), ``pass@1``, ``n_problems``, ``k_samples``.

Two runs of one config and seed on one CPU kernel set write the same records except for the
fields named by :data:`RUN_VARYING` (wall clock and memory); :func:`reproducible` drops them.
Tests that compare runs (resume, requeue, SLURM against local, verl against itself) use it.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("sec.metrics")

KINDS = ("train", "eval")

#: Field names, or prefixes ending in ``/``, of the record fields that differ between two runs of
#: one config and seed: wall-clock seconds and milliseconds, throughput, memory.
RUN_VARYING: tuple[str, ...] = (
    "step_time_s",
    "generation_s",
    "reward_s",
    "update_s",
    "wall_time_s",
    "budget/train_s",
    "curriculum/overhead_ms",
    "verl/timing_s/",
    "verl/timing_per_token_ms/",
    "verl/perf/",
    "verl/actor/perf/",
)


def is_run_varying(key: str) -> bool:
    """Whether a record field is one of :data:`RUN_VARYING` (a name, or under a prefix)."""
    return any(key == f or (f.endswith("/") and key.startswith(f)) for f in RUN_VARYING)


def reproducible(record: Mapping[str, Any]) -> dict[str, Any]:
    """A record without its :data:`RUN_VARYING` fields: what a rerun of the same config and seed
    on the same CPU kernel set writes again (floats up to the kernels' reduction order)."""
    return {k: v for k, v in record.items() if not is_run_varying(k)}


def _jsonable(x: Any) -> Any:
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """All records of a ``metrics.jsonl``; a torn last line (a job killed mid-write) is
    skipped with a warning, never raised."""
    path = Path(path)
    if not path.exists():
        return []
    out = []
    with path.open() as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                log.warning("%s:%d is not valid JSON (torn write?); skipped", path, n)
    return out


class MetricsWriter:
    """Appends records to ``<run_dir>/metrics.jsonl`` (flushed per line) and mirrors them to
    wandb when a wandb config is given.

    Args:
        run_dir: the run's output directory.
        wandb_cfg: the ``logger`` config when ``logger=wandb`` (``project``, ``entity``,
            ``group``, ``mode``), else None.
        run_config: the resolved run config, stored with the wandb run.
        run_name: wandb run name.
    """

    def __init__(
        self,
        run_dir: str | Path,
        wandb_cfg: Mapping[str, Any] | None = None,
        run_config: Mapping[str, Any] | None = None,
        run_name: str | None = None,
    ) -> None:
        self.path = Path(run_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._wandb = None
        if wandb_cfg is not None:
            import wandb

            self._wandb = wandb.init(
                project=wandb_cfg.get("project"),
                entity=wandb_cfg.get("entity"),
                group=wandb_cfg.get("group"),
                mode=wandb_cfg.get("mode", "online"),
                dir=str(self.path.parent),
                name=run_name,
                # one wandb run per run dir, continued when the run resumes
                id=wandb_cfg.get("id") or _stable_id(self.path.parent),
                resume="allow",
                config=dict(run_config or {}),
            )

    def write(self, record: Mapping[str, Any]) -> None:
        """Append one record.

        Raises:
            ValueError: if ``step`` is missing or ``kind`` is not one of :data:`KINDS`.
        """
        if "step" not in record or record.get("kind") not in KINDS:
            raise ValueError(f"a metrics record needs `step` and `kind` in {KINDS}: {dict(record)}")
        clean = {k: _jsonable(v) for k, v in record.items()}
        with self.path.open("a") as f:
            f.write(json.dumps(clean, sort_keys=False) + "\n")
        if self._wandb is not None:
            self._wandb.log(self._wandb_view(clean), step=int(clean["step"]))

    def write_many(self, records: Iterable[Mapping[str, Any]]) -> None:
        for r in records:
            self.write(r)

    def truncate_after(self, step: int) -> int:
        """Drop records with ``step > step`` (a resumed run re-does those steps), so the
        finished file holds every step exactly once. Returns how many were dropped."""
        records = read_metrics(self.path)
        keep = [r for r in records if int(r.get("step", 0)) <= step]
        tmp = self.path.with_suffix(".jsonl.tmp")
        with tmp.open("w") as f:
            for r in keep:
                f.write(json.dumps(r) + "\n")
        tmp.replace(self.path)
        return len(records) - len(keep)

    def close(self) -> None:
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None

    @staticmethod
    def _wandb_view(record: Mapping[str, Any]) -> dict[str, Any]:
        if record["kind"] == "eval":
            prefix = f"eval/{record.get('task')}/{record.get('split')}"
            return {f"{prefix}/pass@1": record.get("pass@1")}
        return {k: v for k, v in record.items() if k not in ("kind", "step") and isinstance(v, (int, float))}


def _stable_id(run_dir: Path) -> str:
    import hashlib

    return hashlib.sha1(str(run_dir.resolve()).encode()).hexdigest()[:16]
