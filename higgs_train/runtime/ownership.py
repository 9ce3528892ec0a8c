"""The deletion rule: a tool only ever deletes or replaces a folder it wrote itself, recognised by the marker file it
left inside (`.higgs-train.json`, saying which kind of output it is and, for outputs written in one go, every file it
wrote). An output folder holding anything else, even a file added later beside an earlier output of ours, is the
user's: the tool refuses with one line and deletes nothing."""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path

from higgs_train.runtime import atomic
from higgs_train.runtime.errors import UserError

MARKER = ".higgs-train.json"


class NotOursError(UserError):
    """An output folder holds files no higgs-train tool marked as its own."""


def _files(folder: Path) -> dict[str, list[int]]:
    """Every file under `folder` (but the marker) -> [size, modification time in ns]: what tells a file edited since."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if (path.is_file() or path.is_symlink()) and path.name != MARKER:
            stat = path.lstat()
            found[path.relative_to(folder).as_posix()] = [stat.st_size, stat.st_mtime_ns]
    return found


def mark(folder: Path, kind: str, record_files: bool = False, **details) -> None:
    """Claims `folder` as output of `kind` (run, export, eval, pairs); `record_files` lists every file in it now (for
    an output written in one go), so a file added or edited later is known as not ours."""
    if record_files:
        details["files"] = _files(Path(folder))
    atomic.write_text(Path(folder) / MARKER, json.dumps({"kind": kind, **details}, indent=2))


def _marker(folder: Path) -> dict:
    try:
        marker = json.loads((Path(folder) / MARKER).read_text())
    except (OSError, ValueError):
        return {}
    return marker if isinstance(marker, dict) else {}


def kind_of(folder: Path) -> str | None:
    """The kind recorded by our marker, or None when the folder carries none (or an unreadable one)."""
    return _marker(folder).get("kind")


def not_ours(folder: Path, also_ours: tuple[str, ...] = ()) -> list[str] | None:
    """The files of an output of ours that its marker does not list as they are now (added or edited since), but
    those matching a pattern of `also_ours` (files our tools add later, e.g. a pairs folder's reference
    log-probabilities); None when the marker lists no files."""
    recorded = _marker(folder).get("files")
    if not isinstance(recorded, dict):
        return None
    return [name for name, identity in _files(Path(folder)).items() if recorded.get(name) != identity
            and not any(fnmatch.fnmatch(name, pattern) for pattern in also_ours)]


def check_resumable(folder: Path, kind: str, setting: str) -> None:
    """Raises unless `folder` is missing, empty or marked as `kind`: for a working folder a tool adds to and resumes
    from, file by file, and never replaces whole (so files beside its own are left alone, not refused)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotOursError(f"{folder} is a file, not a folder; choose another {setting}")
    if folder.is_dir() and any(folder.iterdir()) and kind_of(folder) != kind:
        raise NotOursError(f"{folder} holds files that higgs-train did not write (no {MARKER} marking it as a {kind}); "
                           f"choose another {setting} or empty the folder yourself")


def check_replaceable(folder: Path, kind: str, setting: str, also_ours: tuple[str, ...] = ()) -> None:
    """Raises unless `folder` is missing, empty or an earlier output of `kind` holding only the files it was written
    with; `setting` is the option to change."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotOursError(f"{folder} is a file, not a folder; choose another {setting}")
    if not folder.is_dir() or not any(folder.iterdir()):
        return
    if kind_of(folder) == kind:
        added = not_ours(folder, also_ours)
        if added is None:
            raise NotOursError(f"{folder} is an earlier {kind} written by a higgs-train that kept no list of its "
                               "files, so files added to it since cannot be told from its own, and it never deletes "
                               f"what is not its own; choose another {setting} or empty the folder yourself")
        if added:
            shown = ", ".join(added[:4]) + (f" and {len(added) - 4} more" if len(added) > 4 else "")
            raise NotOursError(f"{folder} holds files higgs-train did not write there, or edited since ({shown}), "
                               f"beside an earlier {kind}, and replacing it would delete them; move them out, or "
                               f"choose another {setting}")
        return
    shown = ", ".join(sorted(p.name for p in folder.iterdir())[:4])
    raise NotOursError(f"{folder} holds files that higgs-train did not write ({shown}; no {MARKER} marking it as "
                       f"a {kind}), and it never deletes what is not its own; choose another {setting} or empty the "
                       "folder yourself")
