"""Reading run folders as higgs-train writes them: `metrics.jsonl`, `eval.jsonl` (each evaluation's samples with
the clip they should match), `samples/`, `checkpoints/`, `run_summary.json` and the run lock. The studio keeps no
state of its own about runs: whatever it shows comes from here, so a restarted studio shows every run it finds."""

from __future__ import annotations

import contextlib
import fcntl
import json
from pathlib import Path

from higgs_train.runtime.run_lock import LOCK_FILE
from higgs_train.train.run_dir import CHECKPOINTS


def read_jsonl(path: Path) -> list[dict]:
    """The complete lines of a JSONL file a run is still appending to (a half-written last line is skipped)."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            rows.append(json.loads(line))
    return rows


def is_run(folder: Path) -> bool:
    return (folder / ".hydra").is_dir() or (folder / "metrics.jsonl").is_file()


def list_runs(runs_root: Path) -> list[Path]:
    """Run folders under `runs_root`, newest first."""
    if not runs_root.is_dir():
        return []
    return sorted((p for p in runs_root.iterdir() if p.is_dir() and is_run(p)), key=lambda p: p.stat().st_mtime,
                  reverse=True)


def is_running(folder: Path) -> bool:
    """Whether a higgs-train process holds the run's lock (the OS drops it when the process dies, however)."""
    lock = folder / LOCK_FILE
    if not lock.is_file():
        return False
    with open(lock) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def checkpoints(folder: Path) -> list[Path]:
    found = folder / CHECKPOINTS
    return sorted(p for p in found.glob("step_*") if p.is_dir()) if found.is_dir() else []


def summary(folder: Path) -> dict | None:
    path = folder / "run_summary.json"
    return json.loads(path.read_text()) if path.is_file() else None


def state(folder: Path) -> str:
    """running, finished (run_summary.json), stopped with a checkpoint to resume from, or not started."""
    if is_running(folder):
        return "running"
    if summary(folder) is not None:
        return "finished"
    saved = checkpoints(folder)
    return f"stopped at {saved[-1].name} (resume continues it)" if saved else "not running, no checkpoint"


def loss_curve(folder: Path) -> list[dict]:
    """(step, loss) of every logged step, for a line plot."""
    return [{"step": row["step"], "loss": row["loss"], "curve": "train loss"} for row in
            read_jsonl(folder / "metrics.jsonl") if "loss" in row and "step" in row]


def eval_curve(folder: Path) -> list[dict]:
    """(step, value, curve) of each evaluation's validation loss and stop rate."""
    points = []
    for row in read_jsonl(folder / "eval.jsonl"):
        points += [{"step": row["step"], "value": row[key], "curve": key} for key in ("val_loss", "stop_rate")
                   if isinstance(row.get(key), (int, float))]
    return points


def samples(folder: Path) -> list[dict]:
    """Each evaluation's samples, newest first: step, id, text, the wav and the clip it should match (if known)."""
    found = []
    for row in reversed(read_jsonl(folder / "eval.jsonl")):
        for record in row.get("samples", []):
            path = Path(record["path"])
            path = path if path.is_absolute() else folder / path
            target = _target_copy(folder, record)
            if path.is_file() and (target is not None or not record.get("target_audio")):  # both, once written
                found.append({"step": row["step"], "id": record["id"], "text": record.get("text", ""),
                              "path": path, "target": target})
    return found


def _target_copy(folder: Path, record: dict) -> Path | None:
    """The clip the sample should match, as report.html copies it into the run folder (`samples/targets/`)."""
    source = record.get("target_audio")
    if not source:
        return None
    copy = folder / "samples" / "targets" / f"{str(record['id']).replace('/', '_')}{Path(source).suffix}"
    return copy if copy.is_file() else None


def adapters(folder: Path) -> list[Path]:
    """The weights a run offers for comparing and speaking: its final adapter, best/ and exported adapters."""
    candidates = [folder / "adapter", folder / "best", *sorted((folder / "export").glob("*"))]
    return [p for p in candidates if (p / "adapter_config.json").is_file()]
