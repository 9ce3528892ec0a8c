"""Crash-safe checkpoints for exact resume, in formats that never execute code: safetensors + JSON.

A checkpoint `checkpoints/step_NNNNNNNN/` holds the trained parameters (the adapter's, or all of them), the optimizer,
scheduler and grad-scaler state, every process's RNG states, `trainer_state.json` (step, data position, counters
and the settings a resume compares) and `manifest.json` (size and SHA-256 of each file). It is written under
`.step_NNNNNNNN.partial` and renamed when complete, so a run killed mid-write leaves nothing that a later run trusts,
and a resume checks the manifest, so a file damaged later is never trained from.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from higgs_train.runtime import atomic
from higgs_train.runtime.errors import TrainingError
from higgs_train.runtime.logs import logger
from higgs_train.train.resumable import ResumeError

CHECKPOINTS = "checkpoints"
STATE_FILE = "trainer_state.json"
MANIFEST = "manifest.json"


class DamagedCheckpoint(TrainingError):
    """No intact checkpoint to resume from: files changed or went missing after they were written."""


def complete_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first (partial ones have another name and are never listed)."""
    folder = Path(run_dir) / CHECKPOINTS
    found = [p for p in folder.glob("step_*") if (p / STATE_FILE).is_file()] if folder.is_dir() else []
    return sorted(found, key=lambda p: int(p.name.split("_")[1]))


def remove_partial_checkpoints(run_dir: Path) -> None:
    for partial in (Path(run_dir) / CHECKPOINTS).glob(atomic.partial_path(Path("step_*")).name):
        atomic.remove(partial)


def _digest(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _write_manifest(folder: Path) -> None:
    """Size and SHA-256 of every file of the checkpoint, written last, so a resume can tell an intact one."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)
    entries = {p.relative_to(folder).as_posix(): {"bytes": p.stat().st_size, "sha256": _digest(p)} for p in files}
    (folder / MANIFEST).write_text(json.dumps({"files": entries}, indent=1))


def damage(folder: Path) -> str | None:
    """What is wrong with a complete checkpoint's files (missing, cut short, changed), or None when intact.
    Checkpoints from before manifests are trusted when their state file reads."""
    folder = Path(folder)
    manifest = folder / MANIFEST
    if not manifest.is_file():
        try:
            json.loads((folder / STATE_FILE).read_text())
        except (OSError, ValueError):
            return f"{STATE_FILE} cannot be read"
        return None
    try:
        entries = json.loads(manifest.read_text())["files"]
    except (OSError, ValueError, KeyError):
        return f"{MANIFEST} cannot be read"
    for name, written in entries.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != written["bytes"]:
            return f"{name} has {path.stat().st_size} bytes, {written['bytes']} were written"
        if _digest(path) != written["sha256"]:
            return f"{name} differs from what was written (SHA-256)"
    return None


def newest_intact_checkpoint(run_dir: Path) -> Path | None:
    """The newest checkpoint whose files are as written, warning about each damaged newer one; None when the run
    has no checkpoint; `DamagedCheckpoint` when it has some and none is intact."""
    checkpoints = complete_checkpoints(run_dir)
    for folder in reversed(checkpoints):
        problem = damage(folder)
        if problem is None:
            return folder
        logger.warning(f"checkpoint {folder} is damaged ({problem}); trying the one before it")
    if checkpoints:
        raise DamagedCheckpoint(f"every checkpoint in {Path(run_dir) / CHECKPOINTS} is damaged (see the warnings); "
                                "restore them from a backup, or start again (overwrite=true or another "
                                "out=)")
    return None


def _rng_files(folder: Path, rank: int) -> tuple[Path, Path]:
    return folder / f"rng_{rank}.safetensors", folder / f"rng_{rank}.json"


def _save_rng(folder: Path, rank: int) -> None:
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors.update({f"cuda_{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    version, internal, gauss = random.getstate()
    name, keys, position, has_gauss, cached = np.random.get_state()
    tensor_path, json_path = _rng_files(folder, rank)
    save_file(tensors, tensor_path)
    json_path.write_text(json.dumps({"python": [version, list(internal), gauss],
                                     "numpy": [name, keys.tolist(), position, has_gauss, cached]}))


def _load_rng(folder: Path, rank: int) -> None:
    tensor_path, json_path = _rng_files(folder, rank)
    if not tensor_path.is_file():
        raise ResumeError(f"cannot resume from {folder}: it has no RNG state for process {rank}; resume with the "
                          "number of processes that wrote it")
    tensors = load_file(tensor_path)
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[f"cuda_{i}"] for i in range(torch.cuda.device_count()) if f"cuda_{i}" in tensors]
    if cuda:
        torch.cuda.set_rng_state_all(cuda)
    states = json.loads(json_path.read_text())
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, position, has_gauss, cached = states["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), position, has_gauss, cached))


def _flatten(values: dict, prefix: str, tensors: dict, scalars: dict) -> None:
    """Per-parameter optimizer state, possibly nested (bitsandbytes keeps its 8-bit state in a sub-dict), as
    `index.name[/sub]` keys."""
    for name, value in values.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict):
            _flatten(value, key + "/", tensors, scalars)
        elif torch.is_tensor(value):
            tensors[key] = value.detach().cpu().contiguous()
        else:
            scalars[key] = value


def _save_optimizer(optimizer, folder: Path) -> None:
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, values in state["state"].items():
        _flatten(values, f"{index}.", tensors, scalars)
    save_file(tensors, folder / "optimizer.safetensors")
    (folder / "optimizer.json").write_text(json.dumps({"param_groups": state["param_groups"], "scalars": scalars}))


def _load_optimizer(optimizer, folder: Path) -> None:
    meta = json.loads((folder / "optimizer.json").read_text())
    state: dict[int, dict] = {}
    for key, value in [*load_file(folder / "optimizer.safetensors").items(), *meta["scalars"].items()]:
        index, path = key.split(".", 1)
        *parents, name = path.split("/")
        node = state.setdefault(int(index), {})
        for parent in parents:
            node = node.setdefault(parent, {})
        node[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def trainable_state(model) -> dict[str, torch.Tensor]:
    return {name: p.detach().cpu().contiguous() for name, p in model.named_parameters() if p.requires_grad}


def save_checkpoint(accelerator, run_dir: Path, step: int, model, optimizer, scheduler, trainer_state: dict,
                    keep_last_n: int | None, uses_deepspeed: bool = False) -> Path:
    """Every process calls this; the main process writes the shared files and commits the folder by renaming it.
    Under DeepSpeed the model and (partitioned) optimizer go through DeepSpeed's own checkpoint format instead."""
    folder = Path(run_dir) / CHECKPOINTS / f"step_{step:08d}"
    partial = atomic.partial_path(folder)  # one name for every process: each writes its own RNG state into it
    if accelerator.is_main_process:
        atomic.remove(partial)
        partial.mkdir(parents=True)
    accelerator.wait_for_everyone()
    _save_rng(partial, accelerator.process_index)
    if uses_deepspeed:
        accelerator.save_state(str(partial / "deepspeed"))
    if accelerator.is_main_process:
        if not uses_deepspeed:
            save_file(trainable_state(accelerator.unwrap_model(model)), partial / "trainable.safetensors")
            _save_optimizer(optimizer, partial)
        (partial / "scheduler.json").write_text(json.dumps(scheduler.state_dict()))
        if accelerator.scaler is not None:
            (partial / "scaler.json").write_text(json.dumps(accelerator.scaler.state_dict()))
        (partial / STATE_FILE).write_text(json.dumps(trainer_state, indent=2))  # marks the content complete
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        _write_manifest(partial)  # after every process's files
        atomic.commit(partial, folder)
        if keep_last_n:
            for old in complete_checkpoints(run_dir)[:-keep_last_n]:
                shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return folder


def load_checkpoint(accelerator, folder: Path, model, optimizer, scheduler, uses_deepspeed: bool = False) -> dict:
    """Restores everything `save_checkpoint` wrote into the live objects; returns the trainer state."""
    if uses_deepspeed:
        accelerator.load_state(str(folder / "deepspeed"))
    else:
        _load_weights_and_optimizer(accelerator, folder, model, optimizer)
    scheduler.load_state_dict(json.loads((folder / "scheduler.json").read_text()))
    if accelerator.scaler is not None and (folder / "scaler.json").is_file():
        accelerator.scaler.load_state_dict(json.loads((folder / "scaler.json").read_text()))
    _load_rng(folder, accelerator.process_index)
    return json.loads((folder / STATE_FILE).read_text())


def _load_weights_and_optimizer(accelerator, folder: Path, model, optimizer) -> None:
    unwrapped = accelerator.unwrap_model(model)
    weights = load_file(folder / "trainable.safetensors")
    expected = {name for name, p in unwrapped.named_parameters() if p.requires_grad}
    if set(weights) != expected:
        missing = sorted(expected ^ set(weights))[:3]
        raise ResumeError(f"cannot resume from {folder}: its trained parameters differ from this model's "
                          f"(e.g. {missing}); resume with the same model and peft settings")
    unwrapped.load_state_dict(weights, strict=False)
    _load_optimizer(optimizer, folder)
