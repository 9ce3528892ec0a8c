"""One run per run directory: an exclusive lock held for the run's life, which the operating system releases when the
process dies, however it dies. Light on imports: the CLI takes it before Hydra writes anything into the directory."""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from higgs_train.errors import UserError

LOCK_FILE = ".higgs-train.lock"
_held: dict[Path, int] = {}  # run directories this process holds the lock of -> nesting depth


class RunDirInUse(UserError):
    """Another run holds the run directory."""


@contextlib.contextmanager
def hold_run_dir(run_dir: str | Path) -> Iterator[None]:
    """Holds the lock while the block runs; the same process may ask again inside it (the CLI, then the recipe)."""
    key = Path(run_dir).resolve()
    if key in _held:
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    key.mkdir(parents=True, exist_ok=True)
    handle = open(key / LOCK_FILE, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise RunDirInUse(f"{run_dir} is in use by another higgs-train run ({holder}); wait for it to end, or "
                          "choose another hydra.run.dir") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
    handle.flush()
    _held[key] = 1
    try:
        yield
    finally:
        del _held[key]
        handle.close()
