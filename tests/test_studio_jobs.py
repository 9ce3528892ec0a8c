"""higgs-studio's jobs: child processes in sessions of their own, one per device at a time, the others queued, and
stopped with SIGTERM; their records, logs and exit codes live in the root, for a restarted studio to read."""

from __future__ import annotations

import os
import signal
import sys

import pytest

from higgs_train.studio.jobs import Jobs

pytestmark = pytest.mark.slow


class Script:
    """A stand-in command (jobs take any object with argv() and shown())."""

    def __init__(self, code: str):
        self.code = code

    def argv(self):
        return [sys.executable, "-c", self.code]

    def shown(self):
        return f"python -c {self.code!r}"


WAITS = "import time; time.sleep(120)"


@pytest.fixture
def jobs(tmp_path):
    """A job queue in tmp_path; whatever it left running (a failed assertion) is ended with it."""
    queue = Jobs(tmp_path)
    yield queue
    for job in queue.all():
        if queue.status(job) == "running":
            os.killpg(job.pid, signal.SIGKILL)


def test_one_job_per_device_runs_the_rest_wait_and_stop_is_sigterm(jobs, tmp_path):
    first = jobs.submit("train", Script(WAITS), "cpu")
    second = jobs.submit("eval", Script("print('second')"), "cpu")
    other_device = jobs.submit("eval", Script("print('gpu')"), "cuda")
    assert [jobs.status(j) for j in (first, second)] == ["running", "queued"]
    os.waitpid(jobs.get(other_device.id).pid, 0)
    assert jobs.status(jobs.get(other_device.id)) == "done"
    assert os.getsid(jobs.get(first.id).pid) == jobs.get(first.id).pid  # its own session: outlives the server

    assert jobs.stop(first.id).startswith("stopping")
    os.waitpid(first.pid, 0)
    assert jobs.status(first) == "stopped"

    reread = Jobs(tmp_path)  # a restarted studio finds the jobs as they were left, and starts the queued one
    assert [j.id for j in reread.all()] == [first.id, second.id, other_device.id]
    reread.tick()
    os.waitpid(reread.get(second.id).pid, 0)
    assert reread.status(reread.get(second.id)) == "done" and reread.log_tail(reread.get(second.id)) == "second"
