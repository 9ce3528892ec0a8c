"""The two kinds of failure every tool reports as one line: the user's mistake (exit 2) and a run that cannot go on
(exit 1). Each module raises its own subclass, so the message is written where the problem is understood, while the
commands catch these two bases without importing the code that raises them."""

from __future__ import annotations


class UserError(ValueError):
    """Something the user asked for cannot be done as asked; the message names the setting and the fix."""


class TrainingError(RuntimeError):
    """The run cannot go on (e.g. too many non-finite steps); the message says what was saved and what to try."""
