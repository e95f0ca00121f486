"""Errors shared across the package, in a module of their own so that any layer can raise them
without importing the run lifecycle (no import cycles: ``sec.workspace`` imports the backends,
which raise :class:`ConfigError` too)."""

from __future__ import annotations


class ConfigError(ValueError):
    """A config value that cannot work (one line naming the key and the accepted values).

    ``sec.launch`` rejects the job with that line: a single run exits with status 1, a sweep
    writes ``rejected.json`` for the job and goes on with the others."""


class RunFailedBefore(RuntimeError):
    """The run dir holds a ``failed.json`` (an earlier attempt raised) and ``rerun_failed`` is
    false."""


class RunInterrupted(RuntimeError):
    """The run stopped on a preemption / time-limit signal after its state was saved, and the
    job was not requeued (e.g. ``slurm.max_num_timeout`` requeues used up). The Workspace
    records it in ``interrupted.json``; a rerun resumes the run from its last checkpoint."""


class RunLocked(RuntimeError):
    """Another live process holds the run dir's lock (``run.lock``): the same run is going on
    elsewhere (e.g. a sweep rerun while the first sweep's jobs still run)."""
