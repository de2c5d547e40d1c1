"""Errors meant for people, not for debugging.

``UserError`` is the base of every mistake a user can fix (a bad recipe, a missing file, a wrong
argument). The CLI prints it as ``error: <message>`` with exit status 2 and no traceback; any
other exception is a bug in tune and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix; ``message`` says what is wrong and what to do instead."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message
