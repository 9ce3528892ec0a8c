"""The Accelerator of a run and what hangs off it: mixed precision, accumulation windows, trackers, and the ZeRO-3
exception for weights that must load whole."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import GradientAccumulationPlugin, InitProcessGroupKwargs

from higgs_train.config.groups import LoggerConfig, TrainerConfig
from higgs_train.launch import resolve_deepspeed_config_file
from higgs_train.train.resumable import flat_config

MIXED_PRECISION = {"bf16": "bf16", "fp16": "fp16", "fp32": "no"}


def build_accelerator(trainer: TrainerConfig, logger: LoggerConfig, run_dir: Path) -> Accelerator:
    trackers = {"wandb": "wandb", "tensorboard": "tensorboard"}.get(logger.name)
    handlers = []
    if os.environ.get("ACCELERATE_USE_DEEPSPEED") == "true":
        resolve_deepspeed_config_file()
        if not torch.cuda.is_available():
            # DeepSpeed on CPU (DS_ACCELERATOR=cpu): without a named backend Accelerate counts one process per rank.
            handlers.append(InitProcessGroupKwargs(backend="gloo"))
    accelerator = Accelerator(
        mixed_precision=MIXED_PRECISION[trainer.precision],
        # Windows are ours (one step = gradient_accumulation_steps batches); never cut one short at an epoch end.
        gradient_accumulation_plugin=GradientAccumulationPlugin(
            num_steps=trainer.gradient_accumulation_steps, sync_with_dataloader=False),
        cpu=trainer.device == "cpu",
        log_with=trackers,
        project_dir=str(run_dir),
        dynamo_backend="inductor" if trainer.compile else "no",
        kwargs_handlers=handlers,
    )
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched != accelerator.num_processes:
        raise RuntimeError(f"launched {launched} processes but Accelerate sees {accelerator.num_processes}: on CPU use "
                           "`accelerate launch --multi_gpu --num_processes N ... trainer.device=cpu` (DDP), or "
                           "`--use_deepspeed` with trainer.device=auto and DS_ACCELERATOR=cpu (DeepSpeed)")
    return accelerator


def init_trackers(accelerator: Accelerator, logger: LoggerConfig, settings: dict, run_dir: Path) -> None:
    """The tracker of `logger.name`, given the run's `settings` (its whole config as plain data)."""
    if logger.name == "jsonl":
        return
    init_kwargs = {}
    if logger.name == "wandb":
        init_kwargs["wandb"] = {"dir": str(run_dir), "mode": logger.mode, "name": run_dir.name}
    accelerator.init_trackers(logger.project,
                              config={k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in
                                      flat_config(settings).items()},
                              init_kwargs=init_kwargs)


@contextlib.contextmanager
def whole_weights(accelerator: Accelerator):
    """Loads inside it are not partitioned by ZeRO-3: the audio tokenizer is frozen and used whole on every process
    (Transformers partitions any `from_pretrained` while Accelerate's DeepSpeed config is registered)."""
    plugin = accelerator.state.deepspeed_plugin
    if plugin is None or plugin.zero_stage != 3:
        yield
        return
    from transformers.integrations.deepspeed import set_hf_deepspeed_config, unset_hf_deepspeed_config

    unset_hf_deepspeed_config()
    try:
        yield
    finally:
        if plugin.dschf is not None:
            set_hf_deepspeed_config(plugin.dschf)
