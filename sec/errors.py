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
