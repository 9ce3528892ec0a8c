"""The two kinds of failure every tool reports as one line: the user's mistake (exit 2) and a run that cannot go on
(exit 1). Each module raises its own subclass, so the message is written where the problem is understood, while the
commands catch these two bases without importing the code that raises them."""

from __future__ import annotations

import errno


class UserError(ValueError):
    """Something the user asked for cannot be done as asked; the message names the setting and the fix."""


class TrainingError(RuntimeError):
    """The run cannot go on (e.g. too many non-finite steps); the message says what was saved and what to try."""


# A disk that is full, read-only or not ours to write: the environment's fault, not a bug, so one line too.
ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT}


def environment_fault(error: BaseException, fix: str) -> str | None:
    """One line for an OSError the user must fix in their environment (`fix` says how), or None for other errors."""
    if not isinstance(error, OSError) or error.errno not in ENVIRONMENT_ERRNOS:
        return None
    where = f" {error.filename}" if error.filename else ""
    return f"cannot write{where}: {error.strerror}; {fix}"
