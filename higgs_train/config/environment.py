"""Settings this machine or launch cannot honour, found before any weight loads (the values themselves passed their
groups' checks)."""

from __future__ import annotations

import importlib.util
import os

from higgs_train.config.checks import ConfigError
from higgs_train.config.groups import LoggerConfig, ModelConfig, OptimConfig, TrainerConfig


def check_environment(model: ModelConfig, optim: OptimConfig, trainer: TrainerConfig, logger: LoggerConfig) -> None:
    on_cpu = trainer.device == "cpu" or not _cuda_available()
    if model.quantization != "none":
        if os.environ.get("ACCELERATE_USE_DEEPSPEED") == "true":
            raise ConfigError(f"model.quantization={model.quantization} does not run under DeepSpeed; launch QLoRA on "
                              "one GPU or with DDP (accelerate launch --multi_gpu), or set model.quantization=none")
        if trainer.device == "cuda" and not _cuda_available():
            raise ConfigError(f"model.quantization={model.quantization} with trainer.device=cuda, but no CUDA device "
                              "is visible; set trainer.device=auto (bitsandbytes also runs on the CPU, slowly)")
    needs = [f"model.quantization={model.quantization}"] if model.quantization != "none" else []
    needs += [f"optim.name={optim.name}"] if optim.name != "adamw" else []
    if needs and importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError(f"{' and '.join(needs)} need bitsandbytes, which is not installed: pip install "
                          "'higgs-train[qlora]' (or pip install bitsandbytes)")
    if trainer.precision == "fp16" and on_cpu:
        raise ConfigError("trainer.precision=fp16 needs a CUDA GPU (loss scaling is CUDA-only), and this run is on "
                          "the CPU; use trainer.precision=bf16 or fp32")
    if model.attn_implementation == "flash_attention_2":
        if importlib.util.find_spec("flash_attn") is None:
            raise ConfigError("model.attn_implementation=flash_attention_2 needs the flash-attn package, which is not "
                              "installed: pip install flash-attn --no-build-isolation, or use "
                              "model.attn_implementation=auto (SDPA)")
        if on_cpu:
            raise ConfigError("model.attn_implementation=flash_attention_2 runs on CUDA GPUs only; use "
                              "model.attn_implementation=auto on this machine")
    if logger.name == "wandb":
        _check_wandb(logger.mode)


def _check_wandb(mode: str) -> None:
    if importlib.util.find_spec("wandb") is None:
        raise ConfigError("logger=wandb needs the wandb package: pip install 'higgs-train[wandb]', or use logger=jsonl "
                          "(metrics.jsonl) or logger=tensorboard")
    if mode == "online" and os.environ.get("WANDB_MODE") not in ("offline", "disabled") and \
            not os.environ.get("WANDB_API_KEY") and not _netrc_has("api.wandb.ai"):
        raise ConfigError("logger=wandb is online but no W&B login is found (WANDB_API_KEY or `wandb login`); log in, "
                          "or set logger.mode=offline (sync later with `wandb sync`)")


def _netrc_has(host: str) -> bool:
    import netrc

    try:
        return netrc.netrc().authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()
