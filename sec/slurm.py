"""SLURM helpers shared by the Hydra launcher of ``hydra/launcher=slurm``
(hydra_plugins/sec_slurm/launcher.py) and ``python -m sec.data --slurm``.

Where a job goes and what it asks for come from the run config's ``slurm`` node, in layers
(later wins): ``conf/slurm/default.yaml``, the model's preset ``conf/slurm/model/<model>.yaml``,
the profile, the user's ``conf/local/default.yaml``, the command line.
``conf/hydra/launcher/slurm.yaml`` maps it onto hydra-submitit-launcher's ``submitit_slurm``
options.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from omegaconf import OmegaConf

log = logging.getLogger("sec.slurm")

#: launcher options that configure the executor itself rather than each job
_INIT_KEYS = ("submitit_folder", "max_num_timeout")


class SweepJobsFailed(RuntimeError):
    """Some jobs of a SLURM sweep failed; the message has one line per failed job."""


def job_info() -> dict[str, Any]:
    """Inside a submitit job: ``{"slurm_job_id": ..., "log": path}``, the job's log file
    (stdout, which has stderr too under ``stderr_to_stdout``; else also ``"stderr": path``),
    from submitit's ``JobEnvironment``; outside one: ``{}``."""
    if "SUBMITIT_EXECUTOR" not in os.environ or "SUBMITIT_FOLDER" not in os.environ:
        return {}
    import submitit

    env = submitit.JobEnvironment()
    info: dict[str, Any] = {"slurm_job_id": env.job_id, "log": str(env.paths.stdout)}
    if env.paths.stderr.exists():
        info["stderr"] = str(env.paths.stderr)
    return info


def executor_parameters(params: Mapping[str, Any], cluster: str = "slurm") -> tuple[dict, dict]:
    """Split hydra-submitit-launcher options into ``AutoExecutor(**init)`` and
    ``update_parameters(**update)`` arguments, as the plugin does: generic options
    (``timeout_min``, ``mem_gb``, ``cpus_per_task``, ...) keep their names, the others get the
    ``slurm_`` prefix.

    Returns:
        (init, update) keyword dicts.
    """
    generic = set(OmegaConf.structured(BaseQueueConf).keys())
    init: dict[str, Any] = {"folder": params["submitit_folder"]}
    if "max_num_timeout" in params:
        init[f"{cluster}_max_num_timeout"] = params["max_num_timeout"]
    update = {
        (k if k in generic else f"{cluster}_{k}"): v
        for k, v in params.items()
        if k not in _INIT_KEYS and k != "_target_"
    }
    return init, update


def first_line(err: BaseException) -> str:
    """One line for a failed job's error: for submitit's ``FailedJobError`` (whose message
    carries the job's traceback) the traceback's last line; for its ``UncompletedJobError``
    (the job was killed or cancelled; the SLURM state says why) a fixed text, or the reason
    submitit gives for not requeueing a signalled job; else
    ``Type: first line``."""
    text = str(err).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    name = type(err).__name__
    # submitit's FailedJobError carries the job's traceback: its last line is the error
    if "with trace:" in text:
        trace = text.split("with trace:", 1)[1].split("You can check full logs", 1)[0]
        tail = [ln.strip() for ln in trace.splitlines() if ln.strip() and not set(ln.strip()) <= {"-"}]
        if tail and "Job not requeued because:" not in tail[-1]:
            return tail[-1]
        if tail:  # submitit's own signal handler raised inside the job: report it as below
            text = tail[-1]
            name = text.split(":", 1)[0].rsplit(".", 1)[-1] or name
    if "Job not requeued because:" in text:  # stopped by a signal it could not checkpoint on
        reason = text.split("Job not requeued because:", 1)[1].strip().splitlines()[0].rstrip(".")
        return f"{name}: the job was stopped and not requeued ({reason})"
    if "has not produced any output" in text:  # submitit's UncompletedJobError: killed, cancelled, ...
        return f"{type(err).__name__}: the job ended without a result"
    return f"{type(err).__name__}: {lines[0] if lines else ''}"
