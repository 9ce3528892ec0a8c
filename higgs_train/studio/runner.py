"""`python -m higgs_train.studio.runner JOB.json`: runs one job's command, its output to the job's log, and writes
its exit status beside it. Started in a session of its own, so the job outlives a page reload and the server; a
SIGTERM to the session reaches the command (which saves a checkpoint) while this process stays to record the end."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path


def main() -> None:
    job_file = Path(sys.argv[1])
    job = json.loads(job_file.read_text())
    signal.signal(signal.SIGTERM, lambda *_: None)  # a handler, not SIG_IGN: the command gets the default back
    with open(job["log"], "ab") as log:
        child = subprocess.Popen(job["argv"], cwd=job["cwd"], stdin=subprocess.DEVNULL, stdout=log,
                                 stderr=subprocess.STDOUT)
        code = child.wait()  # a SIGTERM runs the no-op handler and the wait goes on (PEP 475)
    job_file.with_suffix(".rc").write_text(str(code))


if __name__ == "__main__":
    main()
