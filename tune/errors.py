"""Errors meant for people, not for debugging.

``UserError`` is the base of every mistake a user can fix (a bad recipe, a missing file, a wrong
argument). The CLI prints it as ``error: <message>`` with exit status 2 and no traceback; any
other exception is a bug in tune and keeps its traceback.

``Preempted`` is not a mistake but the same kind of message: the run stopped on a preemption signal
(`launch.preempt_signals`) after saving a complete checkpoint, and continues when the same command
runs again. The CLI exits with its own status, ``Preempted.exit_status`` (75), so that a job script
tells "preempted: resubmit" from "finished" (0) and "failed" (anything else).
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix; ``message`` says what is wrong and what to do instead."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class Preempted(UserError):
    """The run stopped on a preemption signal (`launch.preempt_signals`): every process finished its
    step and the job saved one complete checkpoint at the same step (``step``; None when the signal
    came before the first step, with nothing new to save). ``signal`` names the signal. The same
    command continues the run; `tune` exits with ``exit_status``.

    75 is EX_TEMPFAIL of sysexits.h ("temporary failure; the user is invited to retry"): no launcher,
    shell or scheduler gives it a meaning of its own (a process killed by a signal exits 128 + N)."""

    exit_status = 75

    def __init__(self, message: str, *, signal: str, step: int | None = None) -> None:
        super().__init__(message)
        self.signal = signal
        self.step = step
