"""Checkpoint on SLURM's preemption / time-limit signal, then hand over to submitit's requeue.

A job submitted by submitit (``hydra/launcher=slurm``) is started by ``submitit.core._submit``,
which binds SLURM's warning signal (``USR2`` by default, ``SUBMITIT_PREEMPT_SIGNAL`` changes it;
sbatch ``--signal=USR2@<signal_delay_s>``) to a handler that calls the submitted callable's
``checkpoint()`` (hydra-submitit-launcher's returns the same job call again), requeues the
SLURM job (``scontrol requeue``) and exits at once, wherever the job stands (submitit
``core/job_environment.py``: ``SignalHandler.checkpoint_and_try_requeue``).

:class:`PreemptionGuard` chains in front of that handler for the whole job (the SLURM
launcher enters one around the job call; the Workspace and the backends enter nested ones,
which share its state): the signal only sets :attr:`PreemptionGuard.requested`. The job acts
on it at the first safe point: before training starts nothing needs saving; during training
the backend finishes the optimizer step (or checkpoint save) it is in, saves a checkpoint
(model, optimizer, scheduler, RNG, data position, curriculum state) and calls
:meth:`PreemptionGuard.hand_over`, which runs submitit's handler: requeue and exit. The
requeued job runs the same config in the same run dir, and :class:`sec.workspace.Workspace`
resumes from that checkpoint, dropping any metrics record written after it.

What can go wrong around the hand-over, and what the guard does about it:

* SLURM answers ``scontrol requeue`` by SIGTERMing every process of the job, ``scontrol``
  itself included; killed before it exits, it makes submitit's ``check_call`` raise although
  the job *is* requeued. :meth:`~PreemptionGuard.hand_over` ignores SIGTERM while it runs, a
  disposition that ``scontrol`` inherits.
* Signals that arrive during or after the hand-over (``scancel --full`` delivers one to the
  job step, one through ``srun`` and one through the batch shell) are swallowed: submitit's
  handler runs once.
* When submitit does not requeue (``max_num_timeout`` time-limit requeues used up, or
  ``scontrol`` fails), :meth:`~PreemptionGuard.hand_over` raises
  :class:`sec.errors.RunInterrupted` with submitit's reason: the run is recorded as
  interrupted (resumable), never as failed.
* A signal that arrives while the job's Python starts, before submitit binds its handler, would
  kill it (the default action of USR2): jobs start through :func:`job_main`
  (``python -m sec.preempt``), which records such a signal from the first line on; the guard
  then acts on it at the first safe point.

Outside a submitit job (no handler bound to the signal) the guard installs nothing and the
signal keeps its default action.
"""

from __future__ import annotations

import logging
import os
import runpy
import signal
import sys
from types import FrameType, TracebackType
from typing import Any, NoReturn

from sec.errors import RunInterrupted

log = logging.getLogger("sec.preempt")

#: submitit's environment variable naming its preemption signal (without ``SIG``)
PREEMPT_SIGNAL_ENV = "SUBMITIT_PREEMPT_SIGNAL"


def preempt_signal() -> signal.Signals:
    """The signal submitit binds to checkpoint-and-requeue (``SIGUSR2`` unless
    ``$SUBMITIT_PREEMPT_SIGNAL`` names another).

    Raises:
        ValueError: if ``$SUBMITIT_PREEMPT_SIGNAL`` names no signal.
    """
    name = os.environ.get(PREEMPT_SIGNAL_ENV, "USR2")
    try:
        return signal.Signals[f"SIG{name}"]
    except KeyError:
        raise ValueError(f"${PREEMPT_SIGNAL_ENV}={name!r} is not a signal name (e.g. USR2, USR1)") from None


class _Shared:
    """Process-wide guard state: one signal, one deferred handler, however many guards."""

    requested: bool = False  # a preemption signal arrived
    previous: Any = None  # the deferred handler (submitit's) while a guard is installed
    depth: int = 0  # nested guards entered
    handed_over: bool = False  # the deferred handler ran (or is running)


_STATE = _Shared()


def _note_signal(signum: int, frame: FrameType | None) -> None:
    """The guard's handler: note the signal, act on it later (see module doc)."""
    if not _STATE.requested and not _STATE.handed_over:
        log.warning(
            "caught %s (preemption or time limit): checkpointing at the next safe point, then requeueing",
            signal.Signals(signum).name,
        )
    _STATE.requested = True


class PreemptionGuard:
    """Defers submitit's checkpoint-and-requeue handler until the run's state is saved.

    Use as a context manager around work that must not be cut short::

        with PreemptionGuard() as guard:
            ...train; when guard.requested: save a checkpoint and stop...
            if guard.requested and not finished:
                guard.hand_over()      # submitit: requeue this job, exit

    The outermost guard is :attr:`active` when a callable handler is bound to the signal on
    entry (submitit's, inside a submitit job); it installs itself and restores that handler on
    exit (unless the hand-over has begun: then further signals stay swallowed), and its exit
    clears the state. Nested guards share its state, so a signal noted anywhere is seen
    everywhere.
    """

    def __init__(self) -> None:
        self.signum: signal.Signals = preempt_signal()

    @property
    def requested(self) -> bool:
        """Whether a preemption signal arrived (in this job, at any time so far)."""
        return _STATE.requested

    @property
    def active(self) -> bool:
        """Whether the guard holds a deferred handler (inside a submitit job)."""
        return _STATE.previous is not None

    def __enter__(self) -> PreemptionGuard:
        if _STATE.depth == 0:
            current = signal.getsignal(self.signum)
            if callable(current) and current is not _note_signal:
                _STATE.previous = current
                signal.signal(self.signum, _note_signal)
                log.info("%s will checkpoint the run before the job is requeued", self.signum.name)
        _STATE.depth += 1
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        _STATE.depth -= 1
        if _STATE.depth > 0:
            return
        if _STATE.previous is not None and not _STATE.handed_over:
            signal.signal(self.signum, _STATE.previous)
        # the outermost guard is done (in a job: the job call returns or exits): a later guard
        # starts afresh; after a hand-over the signal stays bound to the guard's handler
        _STATE.requested, _STATE.previous, _STATE.handed_over = False, None, False

    def hand_over(self) -> NoReturn:
        """Run the deferred handler once (submitit's: checkpoint the job call, requeue the SLURM
        job, ``sys.exit``); call it once the run's state is saved. SIGTERM is ignored meanwhile
        (module doc: SLURM's answer to the requeue must not kill ``scontrol``).

        Raises:
            SystemExit: from submitit's handler after a successful requeue.
            RunInterrupted: the job was not requeued; the message has submitit's reason.
            RuntimeError: if no signal was received or the guard never installed itself.
        """
        if not _STATE.requested or _STATE.previous is None:
            raise RuntimeError("hand_over() without a received preemption signal")
        if _STATE.handed_over:
            raise RunInterrupted(f"{self.signum.name}: the hand-over to the job runner already ran")
        _STATE.handed_over = True  # from here on every further signal is swallowed
        log.warning("state saved: handing %s over to the job runner (requeue)", self.signum.name)
        term = signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            _STATE.previous(self.signum, None)
        except Exception as err:
            raise RunInterrupted(
                f"stopped by {self.signum.name} and not requeued ({_reason(err)}); its last checkpoint is "
                "kept and a rerun resumes it"
            ) from err
        finally:
            signal.signal(signal.SIGTERM, term)
        raise RunInterrupted(f"stopped by {self.signum.name}; the job runner returned without requeueing the job")


def _reason(err: BaseException) -> str:
    """submitit's reason for not requeueing (``UncompletedJobError: Job not requeued because:
    ...``), or the error's type and first line."""
    text = str(err).strip()
    if "not requeued because:" in text:
        return text.split("not requeued because:", 1)[1].strip().rstrip(".")
    line = text.splitlines()[0] if text else ""
    return f"{type(err).__name__}: {line}"


def job_main(argv: list[str] | None = None) -> None:
    """``python -m sec.preempt [-u] -m <module> <args>``: run ``<module>`` as ``__main__``
    (submitit's ``submitit.core._submit <folder>``) with the preemption signal noted from the
    first line on, so that a signal arriving before submitit binds its handler (the job's
    Python is starting) is acted on at the first safe point instead of killing the job.

    Raises:
        SystemExit: with a usage line for any other command line.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    signal.signal(preempt_signal(), _note_signal)
    while args and args[0] == "-u":  # the interpreter already runs unbuffered (-u before -m sec.preempt)
        args.pop(0)
    if len(args) < 2 or args[0] != "-m":
        raise SystemExit("usage: python -u -m sec.preempt -m <module> [args...]")
    sys.argv = [args[1], *args[2:]]
    runpy.run_module(args[1], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    # run through the package's module (``sec.preempt``), whose state the guards share
    from sec.preempt import job_main as _job_main

    _job_main()
