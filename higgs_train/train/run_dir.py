"""Claiming the run directory: never train over another run or the user's files by accident, and find the
checkpoint `resume=` points at (the lock that gives a run its directory is `higgs_train.runtime.run_lock`).

The deletion rule (`higgs_train.runtime.ownership`): `overwrite=true` and a fresh start under `resume=auto` only
replace what
a higgs-train run left in a directory it marked as its own."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from omegaconf import OmegaConf

from higgs_train.config import as_dict
from higgs_train.runtime import ownership
from higgs_train.runtime.errors import TrainingError, UserError
from higgs_train.runtime.logs import NOTICE, logger
from higgs_train.train.checkpoint import (
    CHECKPOINTS,
    STATE_FILE,
    DamagedCheckpoint,
    complete_checkpoints,
    damage,
    newest_intact_checkpoint,
    remove_partial_checkpoints,
)
from higgs_train.train.resumable import check_resumable

# What a run leaves in its directory besides `.hydra/`, `train.log`, the marker and the lock (`run_lock.py`).
RUN_ARTIFACTS = ("metrics.jsonl", "eval.jsonl", CHECKPOINTS, "run_summary.json", "adapter", "model", "best", "samples",
                 "report.html", "higgs-train", "wandb")  # the last two: TensorBoard's and W&B's files


class RunDirError(UserError):
    """The run directory or `resume=` target cannot be used as asked; the message says which setting to change."""


class RunFinished(Exception):
    """`resume=auto` on a run that already reached `trainer.max_steps`: there is nothing to do."""


def _clear(run_dir: Path) -> None:
    for name in RUN_ARTIFACTS:
        path = run_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def _is_ours(run_dir: Path) -> bool:
    """Marked by a run, or (runs from before the marker) holding a checkpoint of ours."""
    return ownership.kind_of(run_dir) == "run" or bool(complete_checkpoints(run_dir))


def _finished_steps(run_dir: Path) -> int | None:
    try:
        return int(json.loads((run_dir / "run_summary.json").read_text())["steps"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def raise_if_finished(run_dir: Path, max_steps: int) -> None:
    """`RunFinished` when the run's summary reached `max_steps`; an error when it finished short of it and left no
    checkpoint to go on from."""
    steps = _finished_steps(run_dir)
    if steps is None:
        return
    if steps >= max_steps:
        raise RunFinished(f"{run_dir} already finished at step {steps} (run_summary.json); nothing to resume. To "
                          f"train on, raise trainer.max_steps above {steps} with resume=auto")
    if not complete_checkpoints(run_dir):
        raise RunDirError(f"{run_dir} finished at step {steps} and saved no checkpoint to continue from "
                          "(trainer.save_every_n_steps=null); start a new run (another out=)")


def claim_run_dir(run_dir: Path, resume: str | None, overwrite: bool, max_steps: int, is_main: bool) -> Path | None:
    """Returns the checkpoint to resume from (None: start at step 0). Every process calls it with the same view of
    the folder; only the main process deletes anything, and only what an earlier run of ours left."""
    existing = [name for name in RUN_ARTIFACTS if (run_dir / name).exists()]
    if existing and not _is_ours(run_dir):
        raise RunDirError(f"{run_dir} holds {', '.join(existing)} but no {ownership.MARKER} of a higgs-train run, "
                          "and higgs-train never deletes or continues what it cannot recognise as its own; choose "
                          "another out=")
    if resume in (None, ""):
        if existing and not overwrite:
            raise RunDirError(f"{run_dir} already holds a run ({', '.join(existing)}); add resume=auto to continue "
                              "it, overwrite=true to replace it, or choose another out=")
        if existing and is_main:
            logger.log(NOTICE, f"overwrite=true: replacing the earlier run in {run_dir}")
            _clear(run_dir)
        return None
    if resume == "auto":  # a finished run with checkpoints is told finished once its settings are compared
        checkpoint = newest_intact_checkpoint(run_dir)
        if checkpoint is None:
            raise_if_finished(run_dir, max_steps)
        if checkpoint is None and existing and is_main:
            logger.log(NOTICE, f"resume=auto: {run_dir} holds no checkpoint (its run stopped before the first save); "
                               "starting at step 0 in place of that attempt")
            _clear(run_dir)
        return checkpoint
    checkpoint = Path(resume)
    if not (checkpoint / STATE_FILE).is_file():
        raise RunDirError(f"resume={resume}: not a complete checkpoint (no {STATE_FILE}); use resume=auto or a "
                          f"<run_dir>/{CHECKPOINTS}/step_00000500 folder")
    problem = damage(checkpoint)
    if problem:
        raise DamagedCheckpoint(f"resume={resume}: the checkpoint is damaged ({problem}); resume from another one "
                                "(resume=auto takes the newest intact one)")
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


def _claim(cfg, run_dir: Path, num_processes: int) -> Path | None:
    """The main process's side: claim, check the resume, then record this run's config and mark the directory."""
    resume_from = claim_run_dir(run_dir, cfg.resume, cfg.overwrite, cfg.trainer.max_steps, True)
    if resume_from is not None:
        check_resumable(json.loads((resume_from / STATE_FILE).read_text()), cfg, num_processes, resume_from)
        if cfg.resume == "auto":
            raise_if_finished(run_dir, cfg.trainer.max_steps)
    run_dir.mkdir(parents=True, exist_ok=True)
    remove_partial_checkpoints(run_dir)
    snapshot = run_dir / ".hydra" / "config.yaml"  # written here, once the run is accepted (not by Hydra)
    snapshot.parent.mkdir(exist_ok=True)
    OmegaConf.save({**as_dict(cfg), "out": str(run_dir)}, snapshot)  # the folder it wrote, not `${now}`
    ownership.mark(run_dir, "run")
    return resume_from


def claim_for_all_processes(accelerator, cfg, run_dir: Path) -> tuple[Path, Path | None]:
    """The main process claims the run directory and decides the resume; every process gets that one decision (no
    races). Returns (run directory, checkpoint to resume from or None)."""
    from accelerate.utils import broadcast_object_list

    outcome = [None]
    if accelerator.is_main_process:
        try:
            resume_from = _claim(cfg, run_dir, accelerator.num_processes)
            outcome = [(str(run_dir), str(resume_from) if resume_from else None, None, None)]
        except (UserError, TrainingError, RunFinished) as error:
            kind = RunFinished if isinstance(error, RunFinished) else (
                TrainingError if isinstance(error, TrainingError) else RunDirError)
            outcome = [(str(run_dir), None, kind.__name__, str(error))]
    if accelerator.num_processes > 1:
        broadcast_object_list(outcome, from_process=0)
    shared_dir, resume_from, kind, message = outcome[0]
    if kind:  # the same kind of exception on every process: the CLI maps it to one line and its exit status
        raise {cls.__name__: cls for cls in (RunFinished, TrainingError, RunDirError)}[kind](message)
    return Path(shared_dir), Path(resume_from) if resume_from else None
