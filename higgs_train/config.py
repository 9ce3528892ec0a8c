"""Checks of the composed config that Hydra's struct mode cannot make, run before any weight is loaded."""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from higgs_train.data.tasks import TASKS
from higgs_train.model.hub import go_offline_unless_reachable
from higgs_train.objectives import OBJECTIVES, READS_DATA_PATH, check_objective_config
from higgs_train.runtime.errors import UserError
from higgs_train.runtime.logs import NOTICE, logger

CHOICES = {
    "model.attn_implementation": ("auto", "flash_attention_2", "flex_attention", "sdpa", "eager"),
    "model.weights_dtype": ("auto", "bf16", "fp16", "fp32"),
    "model.quantization": ("none", "nf4", "int8"),
    "optim.name": ("adamw", "adamw8bit", "paged_adamw8bit"),
    "trainer.precision": ("bf16", "fp16", "fp32"),
    "trainer.device": ("auto", "cpu", "cuda"),
    "optim.scheduler": ("cosine", "linear", "constant"),
    "peft.type": ("none", "lora"),
    "task.name": TASKS,
    "data.on_bad_row": ("skip", "fail"),
    "logger.name": ("jsonl", "wandb", "tensorboard"),
    "optim.fused": ("auto", True, False),
    "objective.name": tuple(OBJECTIVES),
    "eval.language": ("en", "zh"),
}
POSITIVE = ("trainer.max_steps", "trainer.batch_size", "trainer.gradient_accumulation_steps",
            "trainer.log_every_n_steps", "trainer.max_bad_steps", "data.max_positions", "data.encode_batch_size",
            "eval.max_new_tokens", "eval.batch_size")
OPTIONAL_POSITIVE = ("trainer.save_every_n_steps", "trainer.keep_last_n", "trainer.early_stopping_patience")


class ConfigError(UserError):
    """One config key with a bad value; the message names the key and what is allowed."""


def number(cfg: DictConfig, key: str, minimum: float = 0, inclusive: bool = True) -> float:
    value = OmegaConf.select(cfg, key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or \
            (value < minimum if inclusive else value <= minimum):
        bound = f">= {minimum}" if inclusive else f"> {minimum}"
        raise ConfigError(f"{key}={value!r} must be a finite number {bound}")
    return value


def check_data_path(cfg: DictConfig) -> None:
    """For the objectives that read conversations: `data.path` is set and exists."""
    if OmegaConf.is_missing(cfg.data, "path") or cfg.data.path in (None, ""):
        raise ConfigError("data.path is not set; give data.path=/path/to/conversations.jsonl (or a folder written by "
                          "`higgs-prep convert`; recipe=smoke uses the built-in demo)")
    if not str(cfg.data.path).startswith("builtin:") and not Path(cfg.data.path).exists():
        raise ConfigError(f"data.path={cfg.data.path} does not exist; point it at a conversation JSONL or a folder "
                          "written by `higgs-prep convert`")


def validate(cfg: DictConfig) -> None:
    for key, allowed in CHOICES.items():
        value = OmegaConf.select(cfg, key)
        if value not in allowed:
            raise ConfigError(f"{key}={value!r} is not allowed; use one of {list(allowed)}")
    if cfg.objective.name in READS_DATA_PATH:  # first: a wrong path is the likeliest mistake, answered at once
        check_data_path(cfg)
    for key in POSITIVE:
        value = OmegaConf.select(cfg, key)
        if not isinstance(value, int) or value <= 0:
            raise ConfigError(f"{key}={value!r} must be a positive integer")
    for key in OPTIONAL_POSITIVE:
        value = OmegaConf.select(cfg, key)
        if value is not None and (not isinstance(value, int) or value <= 0):
            raise ConfigError(f"{key}={value!r} must be a positive integer or null")
    if cfg.freeze.trainable is not None and cfg.peft.type != "none":
        raise ConfigError(f"freeze.trainable={list(cfg.freeze.trainable)} is for full fine-tuning (peft=none); with "
                          "adapters, train extra modules with peft.modules_to_save")
    every = cfg.eval.every_n_steps
    if every not in (None, "auto") and (not isinstance(every, int) or isinstance(every, bool) or every <= 0):
        raise ConfigError(f"eval.every_n_steps={every!r} must be a positive integer, auto (a tenth of the run) or "
                          "null (only at the end)")
    _check_best_metric(cfg.eval.best_metric)
    band = cfg.eval.best_duration_band
    if band is not None and not (OmegaConf.is_list(band) and len(band) == 2 and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in band)
            and 0 < band[0] < 1 < band[1]):
        raise ConfigError(f"eval.best_duration_band={band!r} must be [low, high] around 1 (e.g. [0.8, 1.25]: the "
                          "generated length over the expected), or null for no constraint")
    if not isinstance(cfg.eval.val_size, int) or cfg.eval.val_size < 0:
        raise ConfigError(f"eval.val_size={cfg.eval.val_size!r} must be an integer >= 0 (0: no validation split)")
    if cfg.eval.prompts and not Path(cfg.eval.prompts).is_file():
        raise ConfigError(f"eval.prompts={cfg.eval.prompts} does not exist; give a prompts JSONL (one {{\"text\": "
                          "...} per line, see README) or null for the held-out conversations")
    number(cfg, "optim.lr", 0, inclusive=False)
    for key in ("eval.temperature", "eval.chars_per_second"):
        number(cfg, key, 0, inclusive=False)
    samples = cfg.eval.num_samples
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 0:
        raise ConfigError(f"eval.num_samples={samples!r} must be an integer >= 0 (0: no generated samples)")
    if cfg.eval.get("duration_cap") is not None:
        number(cfg, "eval.duration_cap", 0, inclusive=False)
    for key in ("optim.weight_decay", "optim.max_grad_norm", "optim.text_loss_weight", "data.min_seconds"):
        number(cfg, key, 0)
    if number(cfg, "data.max_seconds", 0, inclusive=False) < cfg.data.min_seconds:
        raise ConfigError(f"data.max_seconds={cfg.data.max_seconds} is below data.min_seconds={cfg.data.min_seconds}")
    warmup = cfg.optim.warmup_steps
    if warmup != "auto" and (not isinstance(warmup, int) or isinstance(warmup, bool) or warmup < 0):
        raise ConfigError(f"optim.warmup_steps={warmup!r} must be an integer >= 0, or auto (10% of trainer.max_steps)")
    if warmup != "auto" and warmup >= cfg.trainer.max_steps:
        logger.log(NOTICE, f"optim.warmup_steps={warmup} is not shorter than the run (trainer.max_steps="
                           f"{cfg.trainer.max_steps}): the lr climbs all run long and never reaches optim.lr="
                           f"{cfg.optim.lr:g}; optim.warmup_steps=auto warms up for 10% of the run")
    if not isinstance(cfg.seed, int) or isinstance(cfg.seed, bool) or not 0 <= cfg.seed < 2**32:
        raise ConfigError(f"seed={cfg.seed!r} must be an integer in [0, 2**32)")
    max_examples = cfg.data.max_examples
    if max_examples is not None and (not isinstance(max_examples, int) or max_examples <= 0):
        raise ConfigError(f"data.max_examples={max_examples!r} must be a positive integer, or null for every row")
    if cfg.peft.type == "lora":
        if not isinstance(cfg.peft.r, int) or cfg.peft.r <= 0:
            raise ConfigError(f"peft.r={cfg.peft.r!r} must be a positive integer (the LoRA rank, e.g. 16)")
        number(cfg, "peft.alpha", 0, inclusive=False)
        if not 0 <= number(cfg, "peft.dropout", 0) < 1:
            raise ConfigError(f"peft.dropout={cfg.peft.dropout!r} must be in [0, 1)")
    budget = cfg.trainer.max_tokens_per_batch
    if budget is not None and (not isinstance(budget, int) or budget < cfg.data.max_positions):
        raise ConfigError(f"trainer.max_tokens_per_batch={budget!r} must be an integer >= data.max_positions="
                          f"{cfg.data.max_positions} (or null for fixed trainer.batch_size batches)")
    if cfg.trainer.packing and budget is None:
        raise ConfigError("trainer.packing=true needs trainer.max_tokens_per_batch (the length of a packed row)")
    _check_weights(cfg)
    _check_environment(cfg)
    check_objective_config(cfg)
    go_offline_unless_reachable(str(cfg.model.name_or_path))  # an offline hub id: one line now, not ten retries later
    if cfg.resume not in (None, "auto") and not Path(cfg.resume).is_dir():
        raise ConfigError(f"resume={cfg.resume} does not exist; use resume=auto or a "
                          "<run_dir>/checkpoints/step_00000500 folder")


def _check_best_metric(name: str) -> None:
    from higgs_train.evaluate.metrics import METRICS, direction

    try:
        ranks = direction(name) is not None
    except KeyError:
        ranks = False
    if not ranks:
        allowed = ["val_loss", "val_accuracy"] + [m.summary for m in METRICS.values() if m.higher_is_better is not None]
        raise ConfigError(f"eval.best_metric={name!r} cannot rank evaluations; use one of {allowed}")


def _check_weights(cfg: DictConfig) -> None:
    """Combinations of frozen-weight precision, quantization and optimizer that cannot train."""
    weights, precision, quantization = cfg.model.weights_dtype, cfg.trainer.precision, cfg.model.quantization
    if weights in ("bf16", "fp16") and weights != precision:
        raise ConfigError(f"model.weights_dtype={weights} needs trainer.precision={weights} (16-bit weights are "
                          f"computed in their own type, and trainer.precision={precision} is another); use "
                          f"model.weights_dtype=auto or fp32, or trainer.precision={weights}")
    if weights in ("bf16", "fp16") and cfg.peft.type == "none":
        raise ConfigError(f"model.weights_dtype={weights} is for adapters (a frozen 16-bit base); full fine-tuning "
                          "keeps fp32 master weights, its frozen part under a freeze preset too: use "
                          "model.weights_dtype=auto, or adapters (peft=lora_audio, ...)")
    if quantization != "none":
        if cfg.peft.type == "none":
            raise ConfigError(f"model.quantization={quantization} quantizes the frozen base for adapters (QLoRA); a "
                              "quantized model cannot be fully fine-tuned: choose adapters (peft=lora_audio, ...) or "
                              "model.quantization=none")
        if os.environ.get("ACCELERATE_USE_DEEPSPEED") == "true":
            raise ConfigError(f"model.quantization={quantization} does not run under DeepSpeed; launch QLoRA on one "
                              "GPU or with DDP (accelerate launch --multi_gpu), or set model.quantization=none")
        if cfg.trainer.device == "cuda" and not _cuda_available():
            raise ConfigError(f"model.quantization={quantization} with trainer.device=cuda, but no CUDA device is "
                              "visible; set trainer.device=auto (bitsandbytes also runs on the CPU, slowly)")
    needs = [f"model.quantization={quantization}"] if quantization != "none" else []
    needs += [f"optim.name={cfg.optim.name}"] if cfg.optim.name != "adamw" else []
    if needs and importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError(f"{' and '.join(needs)} need bitsandbytes, which is not installed: pip install "
                          "'higgs-train[qlora]' (or pip install bitsandbytes)")


def _check_environment(cfg: DictConfig) -> None:
    """Settings this machine cannot honour, found before any weight loads."""
    on_cpu = cfg.trainer.device == "cpu" or not _cuda_available()
    if cfg.trainer.precision == "fp16" and on_cpu:
        raise ConfigError("trainer.precision=fp16 needs a CUDA GPU (loss scaling is CUDA-only), and this run is on "
                          "the CPU; use trainer.precision=bf16 or fp32")
    if cfg.model.attn_implementation == "flash_attention_2":
        if importlib.util.find_spec("flash_attn") is None:
            raise ConfigError("model.attn_implementation=flash_attention_2 needs the flash-attn package, which is not "
                              "installed: pip install flash-attn --no-build-isolation, or use "
                              "model.attn_implementation=auto (SDPA)")
        if on_cpu:
            raise ConfigError("model.attn_implementation=flash_attention_2 runs on CUDA GPUs only; use "
                              "model.attn_implementation=auto on this machine")
    if cfg.logger.name == "wandb":
        _check_wandb(cfg.logger.mode)


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
