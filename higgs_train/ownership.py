"""The deletion rule: a tool only ever deletes or replaces a folder it wrote itself, recognised by the marker file it
left inside (`.higgs-train.json`, saying which kind of output it is). An output folder holding anything else is the
user's: the tool refuses with one line and deletes nothing."""

from __future__ import annotations

import json
from pathlib import Path

from higgs_train import atomic
from higgs_train.errors import UserError

MARKER = ".higgs-train.json"


class NotOursError(UserError):
    """An output folder holds files no higgs-train tool marked as its own."""


def mark(folder: Path, kind: str, **details) -> None:
    """Claims `folder` as output of `kind` (run, export, prepared-dataset)."""
    atomic.write_text(Path(folder) / MARKER, json.dumps({"kind": kind, **details}, indent=2))


def kind_of(folder: Path) -> str | None:
    """The kind recorded by our marker, or None when the folder carries none (or an unreadable one)."""
    try:
        return json.loads((Path(folder) / MARKER).read_text()).get("kind")
    except (OSError, ValueError, AttributeError):
        return None


def check_replaceable(folder: Path, kind: str, setting: str) -> None:
    """Raises unless `folder` is missing, empty or an earlier output of `kind`; `setting` is the option to change."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotOursError(f"{folder} is a file, not a folder; choose another {setting}")
    if not folder.is_dir() or not any(folder.iterdir()) or kind_of(folder) == kind:
        return
    shown = ", ".join(sorted(p.name for p in folder.iterdir())[:4])
    raise NotOursError(f"{folder} holds files that higgs-train did not write ({shown}; no {MARKER} marking it as "
                       f"a {kind}), and it never deletes what is not its own; choose another {setting} or empty the "
                       "folder yourself")
