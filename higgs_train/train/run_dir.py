"""Claiming the run directory: never train over another run by accident, and find what `resume=` points at."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from omegaconf import OmegaConf

from higgs_train.errors import UserError
from higgs_train.logs import logger
from higgs_train.train.checkpoint import CHECKPOINTS, STATE_FILE, complete_checkpoints, remove_partial_checkpoints

# What a run leaves in its directory besides Hydra's own `.hydra/` snapshot.
RUN_ARTIFACTS = ("metrics.jsonl", CHECKPOINTS, "run_summary.json", "adapter", "model", "samples", "dry_run")


class RunDirError(UserError):
    """The run directory or `resume=` target cannot be used as asked; the message says which setting to change."""


def _clear(run_dir: Path) -> None:
    for name in RUN_ARTIFACTS:
        path = run_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def claim_run_dir(run_dir: Path, resume: str | None, overwrite: bool, is_main: bool) -> Path | None:
    """Returns the checkpoint to resume from (None: start at step 0). Every process calls it with the same view of
    the folder; only the main process deletes anything."""
    existing = [name for name in RUN_ARTIFACTS if (run_dir / name).exists()]
    if resume in (None, ""):
        if existing and not overwrite:
            raise RunDirError(f"{run_dir} already holds a run ({', '.join(existing)}); add resume=auto to continue "
                              "it, overwrite=true to replace it, or choose another hydra.run.dir")
        if existing and is_main:
            _clear(run_dir)
        return None
    if resume == "auto":
        checkpoints = complete_checkpoints(run_dir)
        if checkpoints:
            return checkpoints[-1]
        if is_main:
            logger.info(f"resume=auto found no complete checkpoint in {run_dir}; starting at step 0")
            _clear(run_dir)
        return None
    checkpoint = Path(resume)
    if not (checkpoint / STATE_FILE).is_file():
        raise RunDirError(f"resume={resume}: not a complete checkpoint (no {STATE_FILE}); use resume=auto or a "
                          f"<run_dir>/{CHECKPOINTS}/step_N folder")
    return checkpoint


def _step(line: str) -> float:
    """The step of a JSONL metrics line; a line cut short by a killed write counts as after every step."""
    try:
        return json.loads(line).get("step", 0)
    except json.JSONDecodeError:
        return float("inf")


def truncate_metrics(path: Path, last_step: int) -> None:
    """Drops metric lines logged after `last_step` by a run that died before its next checkpoint."""
    if not path.is_file():
        return
    kept = [line for line in path.read_text().splitlines() if line.strip() and _step(line) <= last_step]
    path.write_text("".join(line + "\n" for line in kept))


def claim_for_all_processes(accelerator, cfg, run_dir: Path) -> tuple[Path, Path | None]:
    """The main process claims the run directory and decides the resume; every process gets that one decision (no
    races). Returns (run directory, checkpoint to resume from or None)."""
    from accelerate.utils import broadcast_object_list

    outcome = [None]
    if accelerator.is_main_process:
        try:
            resume_from = claim_run_dir(run_dir, cfg.resume, cfg.overwrite, True)
            run_dir.mkdir(parents=True, exist_ok=True)
            remove_partial_checkpoints(run_dir)
            snapshot = run_dir / ".hydra" / "config.yaml"
            if not snapshot.is_file():  # called as a library, not through Hydra: keep the config export reads
                snapshot.parent.mkdir(exist_ok=True)
                OmegaConf.save(cfg, snapshot)
            outcome = [(str(run_dir), str(resume_from) if resume_from else None, None)]
        except RunDirError as error:
            outcome = [(str(run_dir), None, str(error))]
    if accelerator.num_processes > 1:
        broadcast_object_list(outcome, from_process=0)
    shared_dir, resume_from, error = outcome[0]
    if error:
        raise RunDirError(error)
    return Path(shared_dir), Path(resume_from) if resume_from else None
