"""What every page shares: the root folder, the job queue, where each kind of output goes, and how a job is shown
(its command, its state and the last lines of its log)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

from higgs_train.studio.jobs import Job, Jobs
from higgs_train.studio.paths import Root

HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")


@dataclass
class Studio:
    root: Root
    jobs: Jobs

    @classmethod
    def open(cls, folder: str | Path) -> Studio:
        root = Root(folder)
        return cls(root=root, jobs=Jobs(root.folder))

    @property
    def runs(self) -> Path:
        return self.root.folder / "runs"

    @property
    def evals(self) -> Path:
        return self.root.folder / "evals"

    @property
    def speech(self) -> Path:
        return self.root.folder / "speak"

    def model_value(self, text: str) -> str:
        """A model as the tools take it: `builtin:NAME`, a hub id (`org/name`, when no such folder is in the root),
        or a folder inside the root (shown relative to it)."""
        text = text.strip()
        if text.startswith("builtin:"):
            return text
        if HUB_ID.fullmatch(text) and not (self.root.folder / text).exists():
            return text
        return self.root.shown(self.root.inside(text))

    def data_value(self, text: str) -> str:
        """Data as the tools take it: `builtin:...`, or a path inside the root."""
        text = text.strip()
        return text if text.startswith("builtin:") else self.root.shown(self.root.inside(text))

    def new_name(self, prefix: str) -> str:
        return f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}"

    def latest_job(self, kind: str) -> Job | None:
        found = [job for job in self.jobs.all() if job.kind == kind]
        return found[-1] if found else None

    def job_view(self, job_id: str | None) -> tuple[str, str]:
        """(the job's command, its state and log tail) for a page's job panel."""
        if not job_id:
            return "", ""
        job = self.jobs.get(job_id)
        return job.shown, f"[{self.jobs.status(job)}]\n{self.jobs.log_tail(job)}"


def refused(error: Exception) -> str:
    """A refusal shown where the job's log would be."""
    return f"refused: {error}"

