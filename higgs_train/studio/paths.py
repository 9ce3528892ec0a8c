"""Root confinement: every path the studio reads, writes or serves lies inside the root folder given at start.

A path is refused, in one line, when it names a place outside the root: an absolute path elsewhere, a `..`
component, or a symlink (anywhere along it) that leads out."""

from __future__ import annotations

from pathlib import Path

from higgs_train.runtime.errors import UserError


class PathRefused(UserError):
    """A path outside the studio's root folder."""


class Root:
    """The folder the studio may touch; `inside()` turns a user's path (relative to it, or absolute) into a real path
    within it, or raises `PathRefused`."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder).resolve()
        if not self.folder.is_dir():
            raise PathRefused(f"--root {folder} is not a folder; give an existing folder (default: this one)")

    def inside(self, path: str | Path) -> Path:
        text = str(path).strip()
        if not text:
            raise PathRefused(f"an empty path; give a path inside the studio's root {self.folder}")
        given = Path(text)
        if ".." in given.parts:
            raise PathRefused(f"{text}: '..' is not allowed; give a path inside {self.folder}")
        candidate = given if given.is_absolute() else self.folder / given
        real = candidate.resolve()  # follows every symlink along the way
        if not real.is_relative_to(self.folder):
            raise PathRefused(f"{text} lies outside the studio's root {self.folder} (a symlink or another folder); "
                              "give a path inside it or restart with another --root")
        return real

    def shown(self, path: Path) -> str:
        """A path as commands show it: relative to the root (the studio's working directory)."""
        return str(Path(path).relative_to(self.folder)) if Path(path).is_relative_to(self.folder) else str(path)
