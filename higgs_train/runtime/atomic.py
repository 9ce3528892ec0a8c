"""Write-then-rename: a file or folder appears under its final name only once it is complete, so a run killed
mid-write leaves a `.NAME.partial` sibling that nothing trusts, never a half-written result."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path


def partial_path(final: Path, unique: bool = False) -> Path:
    """The temporary sibling of `final`; `unique` adds the host and process id, for writers that may race on one
    name (processes of several nodes on a shared file system too)."""
    final = Path(final)
    return final.with_name(f".{final.name}.partial" + (f"-{socket.gethostname()}-{os.getpid()}" if unique else ""))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_partials(final: Path) -> list[Path]:
    """Removes the `unique` partials of `final` left by writers on this machine that died (their process is gone);
    returns them. A live writer's partial, or another machine's, is left alone."""
    final = Path(final)
    stale = []
    for partial in final.parent.glob(f".{final.name}.partial-*"):
        host, _, pid = partial.name.split(".partial-", 1)[1].rpartition("-")
        if host == socket.gethostname() and pid.isdigit() and not _alive(int(pid)):
            remove(partial)
            stale.append(partial)
    return stale


def remove(path: Path) -> None:
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def commit(partial: Path, final: Path) -> Path:
    """Moves a complete `partial` to `final`, replacing what was there."""
    final = Path(final)
    if final.is_dir():
        shutil.rmtree(final)
    os.replace(partial, final)
    return final


@contextlib.contextmanager
def atomic_output(final: Path, unique: bool = False) -> Iterator[Path]:
    """Yields the partial path to write (a file, or a folder the block creates); commits it when the block ends,
    removes it when the block raises."""
    final = Path(final)
    partial = partial_path(final, unique)
    remove(partial)
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        yield partial
    except BaseException:
        remove(partial)
        raise
    commit(partial, final)


def write_text(final: Path, text: str) -> Path:
    with atomic_output(final) as partial:
        partial.write_text(text)
    return Path(final)
