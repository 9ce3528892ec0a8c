"""One run per run directory, and one writer per output folder of the small tools: an exclusive lock held for the
work's life, which the operating system releases when the process dies, however it dies. Light on imports: the CLI
takes it before Hydra writes anything into the directory."""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from higgs_train.runtime.errors import UserError

LOCK_FILE = ".higgs-train.lock"
_held: dict[Path, int] = {}  # run directories this process holds the lock of -> nesting depth


class RunDirInUse(UserError):
    """Another run holds the run directory."""


def _lock(lock_file: Path):
    """The open, exclusively locked `lock_file` (our pid written in it), or raises with who holds it."""
    handle = open(lock_file, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise RunDirInUse(holder) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
    handle.flush()
    return handle


@contextlib.contextmanager
def hold_output(folder: str | Path, setting: str) -> Iterator[None]:
    """One writer at a time for a tool's output folder (two `higgs-eval` runs into one out= would each replace the
    other's half-written result): the lock is a hidden sibling file, so the folder itself holds only the output."""
    folder = Path(folder).resolve()
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        handle = _lock(folder.parent / f".{folder.name}.higgs-train.lock")
    except RunDirInUse as holder:
        raise RunDirInUse(f"{folder} is being written by another higgs-train command ({holder}); wait for it to "
                          f"end, or choose another {setting}") from None
    try:
        yield
    finally:
        handle.close()


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
    try:
        handle = _lock(key / LOCK_FILE)
    except RunDirInUse as holder:
        raise RunDirInUse(f"{run_dir} is in use by another higgs-train run ({holder}); wait for it to end, or "
                          "choose another out=") from None
    _held[key] = 1
    try:
        yield
    finally:
        del _held[key]
        handle.close()
