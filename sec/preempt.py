"""Checkpoint on SLURM's preemption / time-limit signal, then hand over to submitit's requeue.

A job submitted by submitit (``hydra/launcher=slurm``) is started by ``submitit.core._submit``,
which binds SLURM's warning signal (``USR2`` by default, ``SUBMITIT_PREEMPT_SIGNAL`` changes it;
sbatch ``--signal=USR2@<signal_delay_s>``) to a handler that calls the submitted callable's
``checkpoint()`` (hydra-submitit-launcher's returns the same job call again), requeues the
SLURM job (``scontrol requeue``) and exits at once, wherever the training loop stands
(submitit ``core/job_environment.py``: ``SignalHandler.checkpoint_and_try_requeue``).

:class:`PreemptionGuard` chains in front of that handler while a backend trains: the signal
only sets :attr:`PreemptionGuard.requested`; the backend finishes the optimizer step it is in,
saves a checkpoint (model, optimizer, scheduler, RNG, data position, curriculum state) and then
calls :meth:`PreemptionGuard.hand_over`, which runs submitit's handler: requeue and exit. The
requeued job runs the same config in the same run dir, and :class:`sec.workspace.Workspace`
resumes from that checkpoint, dropping any metrics record written after it.

Outside a submitit job (no handler bound to the signal) the guard installs nothing and the
signal keeps its default action.
"""

from __future__ import annotations

import logging
import os
import signal
from types import FrameType, TracebackType
from typing import Any

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


class PreemptionGuard:
    """Defers submitit's checkpoint-and-requeue handler until the backend has saved.

    Use as a context manager around the training loop::

        with PreemptionGuard() as guard:
            ...train; when guard.requested: save a checkpoint and stop...
            if guard.requested and not finished:
                guard.hand_over()      # submitit: requeue this job, exit

    The guard is :attr:`active` only when a callable handler is bound to the signal on entry
    (submitit's, inside a submitit job); on exit it restores that handler.
    """

    def __init__(self) -> None:
        self.signum: signal.Signals = preempt_signal()
        self.requested: bool = False
        self.active: bool = False
        self._previous: Any = None

    def __enter__(self) -> PreemptionGuard:
        previous = signal.getsignal(self.signum)
        if callable(previous):
            self._previous = previous
            signal.signal(self.signum, self._on_signal)
            self.active = True
            log.info("%s will save a checkpoint before the job is requeued", self.signum.name)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._restore()

    def _restore(self) -> None:
        if self.active:
            signal.signal(self.signum, self._previous)
            self.active = False

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if not self.requested:
            log.warning(
                "caught %s (preemption or time limit): saving a checkpoint after this step, then requeueing",
                signal.Signals(signum).name,
            )
        self.requested = True

    def hand_over(self) -> None:
        """Run the handler the guard deferred (submitit's: checkpoint the job call, requeue
        the SLURM job, ``sys.exit``); call it once the run's state is saved. Does not return
        when that handler exits, as submitit's does.

        Raises:
            RuntimeError: if no signal was received or the guard never installed itself.
        """
        if not self.requested or self._previous is None:
            raise RuntimeError("hand_over() without a received preemption signal")
        previous = self._previous
        self._restore()
        log.warning("checkpoint saved: handing %s over to the job runner (requeue)", self.signum.name)
        previous(self.signum, None)
