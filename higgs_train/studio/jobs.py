"""Jobs: each command the studio runs is a child process in a session of its own (`runner.py`), so it outlives a
page reload and the server. One job runs per device; the others wait in a queue. Everything about a job lives in
`ROOT/.studio/jobs/` (its record, log and exit status), so a restarted studio finds every job as it left it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from higgs_train.studio.commands import Command

ENDED = ("done", "failed", "stopped")


@dataclass
class Job:
    id: str
    kind: str  # data | train | eval | export | speak: the page it belongs to
    shown: str  # the command as a user types it
    argv: list[str]
    cwd: str
    log: str
    device: str
    target: str = ""  # what it writes: a run folder, an eval folder, a wav
    pid: int | None = None
    created: float = field(default_factory=time.time)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def device_of(requested: str | None) -> str:
    """The device a job occupies: cpu when it asks for it or when no GPU is there, else cuda."""
    if requested == "cpu":
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class Jobs:
    def __init__(self, root: Path):
        self.folder = root / ".studio" / "jobs"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.root = root
        self._children: dict[str, subprocess.Popen] = {}  # the ones this server started: reaped as they end
        self._lock = threading.Lock()

    def _file(self, job_id: str, suffix: str) -> Path:
        return self.folder / f"{job_id}{suffix}"

    def all(self) -> list[Job]:
        return sorted((Job(**json.loads(p.read_text())) for p in self.folder.glob("*.json")), key=lambda j: j.created)

    def get(self, job_id: str) -> Job:
        return Job(**json.loads(self._file(job_id, ".json").read_text()))

    def status(self, job: Job) -> str:
        rc_file = self._file(job.id, ".rc")
        if rc_file.is_file():
            code = int(rc_file.read_text() or 1)
            return "done" if code == 0 else "stopped" if self.stop_requested(job) else "failed"
        if job.pid is None:
            return "queued"
        child = self._children.get(job.id)
        if (child is not None and child.poll() is None) or (child is None and _alive(job.pid)):
            return "running"
        return "stopped" if self.stop_requested(job) else "failed"  # ended without writing its status: killed

    def submit(self, kind: str, command: Command, device: str, target: str = "") -> Job:
        job_id = time.strftime("%Y%m%d-%H%M%S-") + f"{time.time_ns() % 10**6:06d}"
        job = Job(id=job_id, kind=kind, shown=command.shown(), argv=command.argv(), cwd=str(self.root),
                  log=str(self._file(job_id, ".log")), device=device, target=target)
        self._save(job)
        self.tick()
        return self.get(job.id)

    def _save(self, job: Job) -> None:
        partial = self._file(job.id, ".json.partial")
        partial.write_text(json.dumps(asdict(job)))
        partial.replace(self._file(job.id, ".json"))

    def tick(self) -> None:
        """Starts the oldest queued job of each device that has none running."""
        with self._lock:
            jobs = [(job, self.status(job)) for job in self.all()]
            busy = {job.device for job, status in jobs if status == "running"}
            for job, status in jobs:
                if status == "queued" and job.device not in busy:
                    self._start(job)
                    busy.add(job.device)

    def _start(self, job: Job) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        child = subprocess.Popen([sys.executable, "-m", "higgs_train.studio.runner", str(self._file(job.id, ".json"))],
                                 cwd=job.cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, start_new_session=True)
        self._children[job.id] = child
        job.pid = child.pid
        self._save(job)

    def stop(self, job_id: str) -> str:
        """SIGTERM to the job's session: a training run saves a checkpoint after the step in flight. A queued job is
        taken off the queue."""
        job = self.get(job_id)
        status = self.status(job)
        if status == "queued":
            self._file(job.id, ".stop").touch()
            self._file(job.id, ".rc").write_text("143")
            return "taken off the queue"
        if status != "running":
            return f"already {status}"
        self._file(job.id, ".stop").touch()
        os.killpg(job.pid, signal.SIGTERM)
        return "stopping (SIGTERM: a checkpoint is saved after the step in flight)"

    def stop_requested(self, job: Job) -> bool:
        return self._file(job.id, ".stop").exists()

    def log_tail(self, job: Job, lines: int = 15) -> str:
        """The log's last lines as a terminal would show them (a progress bar's carriage returns overwrite)."""
        path = Path(job.log)
        if not path.is_file():
            return ""
        with open(path, "rb") as handle:
            handle.seek(max(0, path.stat().st_size - 20000))
            text = handle.read().decode("utf-8", "replace")
        shown = [line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.split("\n")]
        return "\n".join([line for line in shown if line.strip()][-lines:])

    def running_for(self, target: str) -> Job | None:
        """The queued or running job that writes `target` (a run folder), if any."""
        for job in reversed(self.all()):
            if job.target == target and self.status(job) in ("queued", "running"):
                return job
        return None

    def start_watching(self, every: float = 1.0) -> None:
        """A daemon thread that starts queued jobs as devices free up."""

        def watch():
            while True:
                time.sleep(every)
                try:
                    self.tick()
                except OSError as error:  # a full disk: the next tick tries again
                    print(f"higgs-studio: {error}", file=sys.stderr)

        threading.Thread(target=watch, daemon=True, name="studio-jobs").start()
