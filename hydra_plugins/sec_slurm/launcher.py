"""The Hydra launcher of ``hydra/launcher=slurm`` (conf/hydra/launcher/slurm.yaml); Hydra only
loads launchers from the ``hydra_plugins`` namespace package, hence this module.

:class:`SlurmLauncher` is hydra-submitit-launcher's ``SlurmLauncher`` (same job call, same
``checkpoint()`` that makes a signalled job requeue itself) with these changes:

* every job's resources are resolved from that job's own config, and jobs with equal
  resources go out as one job array: ``model=qwen2.5_3b,qwen2.5_7b`` gets 4 and 8 GPUs;
* the launcher waits for every job before it reports, and reports every failed job (its
  overrides, error, SLURM job id, log file and run dir) in one error: a failing job neither
  hides the others' failures nor stops the launcher waiting for the others; jobs stopped by a
  signal and not requeued (``interrupted.json``) are listed as resumable;
* each job runs under a :class:`sec.preempt.PreemptionGuard` from its first line, started
  through ``python -m sec.preempt`` (a preemption signal is noted, never fatal, while the job's
  Python starts); the batch script's ``setup`` (conf/hydra/launcher/slurm.yaml) forwards a
  signal that reaches the batch shell to the job step.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher import submitit_launcher
from omegaconf import OmegaConf

from sec import rundir
from sec.errors import RunInterrupted
from sec.preempt import PreemptionGuard
from sec.slurm import SweepJobsFailed, executor_parameters, first_line

log = logging.getLogger("sec.slurm")

rundir.register_resolvers()  # job dir names (hydra.sweep.subdir) resolve in the job process

#: how submitit starts a job's Python: through sec.preempt's job_main (module doc)
JOB_PYTHON = f"{shlex.quote(sys.executable)} -u -m sec.preempt"


class SlurmLauncher(submitit_launcher.SlurmLauncher):
    """hydra-submitit-launcher's SLURM launcher, one array per resource set, a complete
    failure report and preemption-safe jobs (module doc)."""

    def __call__(self, *args: Any, **kwargs: Any) -> JobReturn:
        """The job (inside SLURM): Hydra's job call under a preemption guard."""
        with PreemptionGuard():
            return super().__call__(*args, **kwargs)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        """Submit every job, wait for all, and return their results in order.

        Raises:
            SweepJobsFailed: one line per failed or interrupted job (overrides, error, SLURM
                job id, log file, run dir), after every job has ended.
        """
        assert self.config is not None
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))
        log.info(f"Submitit 'slurm' sweep output dir : {sweep_dir}")
        jobs = self._submit(job_overrides, initial_job_idx)
        return self._collect(jobs, job_overrides, initial_job_idx)

    def _submit(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> dict[int, Any]:
        """One job array per distinct resource set, each job's set resolved from its own config.

        Returns:
            sweep position -> submitit job.
        """
        import submitit

        assert self.hydra_context is not None
        groups: dict[str, list[int]] = {}
        params_of: dict[str, dict[str, Any]] = {}
        for i, overrides in enumerate(job_overrides):
            job_cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            params = OmegaConf.to_container(job_cfg.hydra.launcher, resolve=True)
            assert isinstance(params, dict)
            key = json.dumps(params, sort_keys=True, default=str)
            params_of[key] = params
            groups.setdefault(key, []).append(i)

        jobs: dict[int, Any] = {}
        for key, members in groups.items():
            init, update = executor_parameters(params_of[key])
            executor = submitit.AutoExecutor(cluster="slurm", slurm_python=JOB_PYTHON, **init)
            executor.update_parameters(**update)
            job_params = [
                (
                    list(job_overrides[i]),
                    "hydra.sweep.dir",
                    initial_job_idx + i,
                    f"job_id_for_{initial_job_idx + i}",
                    Singleton.get_state(),
                )
                for i in members
            ]
            submitted = executor.map_array(self, *zip(*job_params, strict=True))
            for i, job in zip(members, submitted, strict=True):
                jobs[i] = job
                log.info(
                    "\t#%d : %s -> SLURM job %s (log %s)",
                    initial_job_idx + i,
                    " ".join(filter_overrides(job_overrides[i])),
                    job.job_id,
                    job.paths.stdout,
                )
        return jobs

    def _collect(
        self, jobs: dict[int, Any], job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> list[JobReturn]:
        """Wait for every job; return the results of those that returned, raise for the rest."""
        from sec.launch import REJECTED  # not at import: Hydra imports this module on every run

        returns: list[JobReturn] = []
        failures: list[str] = []
        interrupted: list[str] = []
        rejected: list[str] = []
        for i, overrides in enumerate(job_overrides):
            job = jobs[i]
            where = f"SLURM job {job.job_id}, log {job.paths.stdout}"
            name = f"#{initial_job_idx + i} {' '.join(filter_overrides(overrides))}"
            try:
                ret = job.results()[0]
            except Exception as err:  # the job died: killed, out of memory, time limit, cancelled
                failures.append(f"{name}: {first_line(err)} ({where}, state {job.state})")
                continue
            returns.append(ret)
            run_dir = Path(ret.hydra_cfg.hydra.runtime.output_dir) if ret.hydra_cfg else None
            if ret.status == JobStatus.FAILED:  # the run raised; Hydra's run_job caught it
                try:
                    ret.return_value  # noqa: B018 -- re-raises the run's exception
                except RunInterrupted as err:
                    interrupted.append(f"{name}: interrupted: {err} ({where}, run dir {run_dir})")
                except Exception as err:
                    failures.append(f"{name}: {type(err).__name__}: {err} ({where}, run dir {run_dir})")
            elif run_dir is not None and (run_dir / REJECTED).exists():
                reason = json.loads((run_dir / REJECTED).read_text()).get("reason", "?")
                rejected.append(f"{name}: rejected: {reason}")
        if failures or interrupted:
            # raising skips Hydra's on_multirun_end, where sec.launch.SweepReport lists the jobs
            # rejected as invalid configs: list them here too
            resumable = f"{len(interrupted)} interrupted (rerun the sweep to resume them)"
            if failures:
                head = f"{len(failures)} of {len(job_overrides)} SLURM jobs failed"
                head += f", {resumable}" if interrupted else ""
            else:
                head = f"{len(interrupted)} of {len(job_overrides)} SLURM jobs {resumable.split(' ', 1)[1]}"
            if rejected:
                head += f", {len(rejected)} rejected as invalid configs"
            report = f"{head} (the others finished):\n  " + "\n  ".join(failures + interrupted + rejected)
            log.error(report)
            raise SweepJobsFailed(report)
        return returns
