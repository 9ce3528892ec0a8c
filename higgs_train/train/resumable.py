"""What a resumed run may change: the settings a checkpoint was trained with are compared with the resuming run's,
and every difference is either refused in one line naming the setting, or applied and said (never silent).

Applied: how long to train, how often to log, save and evaluate, trackers and attention kernels, none of which change
the steps already taken. Refused: everything else (model, adapter, optimizer, schedule, batch, data, seed), and the
data itself when its contents changed at the same path.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from higgs_train.builtins.assets import BUILTIN_PREFIX
from higgs_train.config import RunConfig, as_dict
from higgs_train.data.table import data_files
from higgs_train.runtime.errors import UserError
from higgs_train.runtime.logs import NOTICE, logger

APPLIED = ("trainer.max_steps", "trainer.save_every_n_steps", "trainer.keep_last_n", "trainer.log_every_n_steps",
           "trainer.max_bad_steps", "trainer.early_stopping_patience", "trainer.num_workers", "trainer.peak_tflops",
           "trainer.compile",
           "model.attn_implementation", "model.gradient_checkpointing", "data.encode_batch_size")
APPLIED_GROUPS = ("eval.", "logger.")  # except eval.val_size, which decides the training rows
# How and where this command was asked to start, not what it trains (a moved run folder resumes).
INVOCATION = ("resume", "overwrite", "dry_run", "verbose", "out")


class ResumeError(UserError):
    """The checkpoint cannot continue this run; the message names the setting that differs."""


def run_signature(cfg: RunConfig, num_processes: int) -> dict[str, object]:
    """The settings every checkpoint records in a form that also reads old checkpoints; the global batch folds in
    the process count, which is not a config key."""
    budget = cfg.trainer.max_tokens_per_batch
    per_process = f"{budget} tokens" if budget else f"{cfg.trainer.batch_size} rows"
    signature = {
        "model.name_or_path": cfg.model.name_or_path,
        "model.weights_dtype": cfg.model.weights_dtype,
        "model.quantization": cfg.model.quantization,
        "optim.name": cfg.optim.name,
        "data.path": cfg.data.path,
        "data.max_examples": cfg.data.max_examples,
        "task.name": cfg.task.name,
        "seed": cfg.seed,
        "global batch": f"{per_process}{' packed' if cfg.trainer.packing else ''} x "
                        f"{cfg.trainer.gradient_accumulation_steps} accumulation x {num_processes} processes",
    }
    signature["freeze.trainable"] = cfg.freeze.trainable
    for key, value in as_dict(cfg)["peft"].items():
        signature[f"peft.{key}"] = value
    return signature


def _named_clips(jsonl: Path) -> list[tuple[str, tuple[int, int]]]:
    """(path, identity) of every audio file a conversation or pairs JSONL names: a clip replaced at the same path
    changes what is trained on as much as an edited line does."""
    from higgs_train.data.code_cache import clip_identity
    from higgs_train.data.conversations import DataError, jsonl_objects

    named = set()
    try:
        for _, _, record in jsonl_objects(jsonl):
            named.update(record[side] for side in ("chosen", "rejected") if isinstance(record.get(side), str))
            for message in record.get("messages") or []:
                for item in (message.get("content") or []) if isinstance(message, dict) else []:
                    if isinstance(item, dict) and isinstance(item.get("path"), str):
                        named.add(item["path"])
    except DataError:  # a broken file: its own hash already tells it from the one the checkpoint saw
        pass
    return [(name, clip_identity(jsonl.parent / name)) for name in sorted(named)]


def _data_places(data_cfg) -> list[tuple[str, str]]:
    return [(key, place) for key in ("path", "pairs") if (place := getattr(data_cfg, key))]


def data_identity(data_cfg) -> str:
    """A hash of the training data's files (`data.path`: the JSONL and the clips it names, or a prepared dataset's
    Arrow and state files; `data.pairs` likewise); a built-in dataset is identified by its name, since the kit
    rebuilds it identically."""
    places = [place for _, place in _data_places(data_cfg)]
    if len(places) == 1 and str(places[0]).startswith(BUILTIN_PREFIX):
        return str(places[0])
    digest = hashlib.sha256()
    for place in places:
        if str(place).startswith(BUILTIN_PREFIX):
            digest.update(str(place).encode())
            continue
        for file in data_files(Path(place)):
            with open(file, "rb") as handle:
                digest.update(file.name.encode() + hashlib.file_digest(handle, "sha256").digest())
        if Path(place).is_file():
            digest.update(json.dumps(_named_clips(Path(place))).encode())
    return digest.hexdigest()[:16]


def resume_record(cfg: RunConfig) -> dict:
    """What a checkpoint stores to be compared later: the resolved config and the data's identity."""
    return {"config": as_dict(cfg), "data_identity": data_identity(cfg.data)}


def flat_config(tree: dict, prefix: str = "") -> dict:
    """A resolved config as `group.key` -> value (an empty group stays one value)."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(flat_config(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _refuse(checkpoint: Path, key: str, before, now) -> ResumeError:
    return ResumeError(f"cannot resume from {checkpoint}: {key} was {before!r} there and is {now!r} now; resume "
                       "with the same setting, or start a new run (another out=)")


def check_resumable(saved: dict, cfg: RunConfig, num_processes: int, checkpoint: Path) -> None:
    """Raises `ResumeError` for the first difference that would change the result; logs the ones it applies.
    `saved` is the checkpoint's trainer state (older checkpoints hold only the signature)."""
    current = run_signature(cfg, num_processes)
    for key in sorted(set(saved["signature"]) | set(current)):
        if saved["signature"].get(key) != current.get(key):
            raise _refuse(checkpoint, key, saved["signature"].get(key), current.get(key))
    if "config" not in saved:
        return
    if saved["data_identity"] != data_identity(cfg.data):
        places = " and ".join(f"data.{key}={place}" for key, place in _data_places(cfg.data))
        raise ResumeError(f"cannot resume from {checkpoint}: the data at {places} changed since that checkpoint was "
                          "written (its files, or the audio files it names, differ); resume with the data it was "
                          "trained on, or start a new run (another out=)")
    before, now = flat_config(saved["config"]), flat_config(as_dict(cfg))
    applied = []
    for key in sorted(before.keys() & now.keys()):  # a key only one side knows comes from another version
        if before[key] == now[key] or key in INVOCATION:
            continue
        if key not in APPLIED and (not key.startswith(APPLIED_GROUPS) or key == "eval.val_size"):
            raise _refuse(checkpoint, key, before[key], now[key])
        applied.append(f"{key} {before[key]!r} -> {now[key]!r}")
    if applied:
        schedule = " (the lr schedule now ends at the new max_steps)" if "trainer.max_steps" in before.keys() and \
            before["trainer.max_steps"] != now["trainer.max_steps"] else ""
        logger.log(NOTICE, f"resuming with changed settings, applied from here on: {'; '.join(applied)}{schedule}")
