"""verl backend: the paper's engine (verl 0.9.1 on Ray GPU clusters) with the SEC curriculum
choosing every batch. No fork or patch of verl; one module per responsibility:

* :mod:`~sec.backends.verl.config` — the run config as verl overrides (the keys that depend on
  the run); ``sec_ppo_trainer.yaml`` — the constant keys, a delta over verl's packaged
  ``ppo_trainer`` (``defaults: [ppo_trainer, _self_]``, as verl's recipes do).
* :mod:`~sec.backends.verl.compose` — composes that config as verl's entry point does, runs
  verl's own validation, builds the command (``python -m verl.trainer.main_ppo
  --config-path=<this package> --config-name=sec_ppo_trainer <overrides>``); ``backend.dry_run``.
* :mod:`~sec.backends.verl.data` — the train / validation parquet and ``sec_spec.json``.
* :mod:`~sec.backends.verl.launch` — runs verl, resumes from the newest complete checkpoint
  (sec/rundir.py), checkpoints on SLURM's preemption signal.
* :mod:`~sec.backends.verl.metrics` — verl's log and the curriculum log into ``metrics.jsonl``.
* :mod:`~sec.backends.verl.smoke` — the verdict of the first GPU run (``profile=smoke``).
* :mod:`~sec.backends.verl.trl_compat` — imported at ``import verl`` in every process
  (``VERL_USE_EXTERNAL_MODULES``): lets verl's model build run next to TRL 1.16.
* ``backend.device=cpu`` (verl's own loop on the CPU, docs/verl.md): :mod:`~sec.backends.verl.cpu`
  (imported at ``import verl``: the ``cpu`` platform, the FSDP engine for it, the ``hf`` rollout
  engine of :mod:`~sec.backends.verl.hf_rollout`) and :mod:`~sec.backends.verl.replacements` (the
  verl internals no registry reaches).

Inside verl's trainer, :mod:`sec.backends.verl_ext` is the dataset (the curriculum draws each
batch, ``on_batch_end`` feeds the advantages back) and the reward function. Nothing here imports
verl at module level.
"""

from __future__ import annotations

from sec.backends.verl.compose import (
    VERL_VERSION,
    VerlRun,
    build,
    compose_verl_config,
    dry_run,
    validate_verl_config,
    verl_command,
)
from sec.backends.verl.config import (
    ADV_ESTIMATORS,
    PASSTHROUGH_TEMPLATE,
    device_settings,
    model_path,
    verl_env_vars,
    verl_overrides,
)
from sec.backends.verl.data import val_records, verl_rows, write_run_files
from sec.backends.verl.launch import prepare_resume, train
from sec.backends.verl.metrics import MetricsMerger
from sec.backends.verl.paths import VerlPaths, verl_paths

__all__ = [
    "ADV_ESTIMATORS",
    "PASSTHROUGH_TEMPLATE",
    "VERL_VERSION",
    "MetricsMerger",
    "VerlPaths",
    "VerlRun",
    "build",
    "compose_verl_config",
    "device_settings",
    "dry_run",
    "model_path",
    "prepare_resume",
    "train",
    "val_records",
    "validate_verl_config",
    "verl_command",
    "verl_env_vars",
    "verl_overrides",
    "verl_paths",
    "verl_rows",
    "write_run_files",
]
