"""A per-component estimate of training memory for one process, so a dry run can say whether a config fits before
any weight is loaded. `benchmarks/memory_plan.py` checks it against measured peaks (BENCHMARKS.md)."""

from __future__ import annotations

import os

import torch

from higgs_train.model.precision import load_dtype
from higgs_train.model.quantization import NEVER_QUANTIZED

GIB = 1024**3
BYTES = {torch.float32: 4, torch.bfloat16: 2, torch.float16: 2}
# Bytes per quantized parameter: (values, scales). NF4 packs two 4-bit values a byte, with an 8-bit absmax per block
# of 64 and an fp32 scale per 256 of those (double quantization); int8 adds one fp32 scale per row (counted apart).
QUANTIZED_BYTES = {"nf4": (0.5, 1 / 64 + 4 / (64 * 256)), "int8": (1.0, 0.0)}
# AdamW keeps two fp32 states; bitsandbytes' 8-bit AdamW two uint8 states plus an fp32 absmax per block of 256,
# except for tensors under 4096 elements, which keep fp32 states.
OPTIMIZER_BYTES = {"adamw": 8.0, "adamw8bit": 2 + 8 / 256, "paged_adamw8bit": 2 + 8 / 256}
SMALL_TENSOR = 4096
# Per token and decoder layer, the activations a backward pass keeps, in units of hidden_size x activation bytes:
# ~17 for a Llama-style layer with memory-efficient attention (no stored scores); with checkpointing only the
# layer's input (1) and, during one layer's recomputation, that layer's 17.
ACTIVATION_UNITS = 17
# The process itself: the CUDA context and allocator slack on a GPU, the interpreter and libraries on CPU.
RUNTIME_GIB = {"cuda": 0.75, "cpu": 0.6}


def _is_quantized(name: str, parameter: torch.nn.Parameter, quantization: str) -> bool:
    """The decoder's linear weights are quantized; heads, embeddings and norms are not (model/quantization.py)."""
    return (quantization != "none" and parameter.dim() == 2 and ".layers." in f".{name}"
            and not any(f".{module}." in f".{name}" for module in NEVER_QUANTIZED))


def estimate_training_memory(model, cfg, tokens: int, audio_tokenizer_params: int = 0,
                             device_type: str = "cuda") -> dict[str, float]:
    """GiB per component for `model` as the run builds it (a meta-device copy is enough: only shapes and
    `requires_grad` are read) and batches of `tokens` positions (rows x longest)."""
    config = model.config
    quantization = cfg.model.quantization
    frozen_dtype = load_dtype(cfg)
    parts = dict.fromkeys(("weights", "quantization state", "gradients", "optimizer", "activations", "logits",
                           "audio tokenizer", "runtime"), 0.0)
    for name, parameter in model.named_parameters():
        count = parameter.numel()
        if parameter.requires_grad:
            parts["weights"] += 4 * count
            parts["gradients"] += 4 * count
            parts["optimizer"] += 8 * count if count < SMALL_TENSOR else OPTIMIZER_BYTES[cfg.optim.name] * count
        elif _is_quantized(name, parameter, quantization):
            values, scales = QUANTIZED_BYTES[quantization]
            parts["weights"] += values * count
            parts["quantization state"] += scales * count + (4 * parameter.shape[0] if quantization == "int8" else 0)
        else:  # k-bit preparation keeps what is not quantized in fp32
            parts["weights"] += (4 if quantization != "none" else BYTES[frozen_dtype]) * count
    parts["activations"] = activation_bytes(cfg.trainer.precision, cfg.model.gradient_checkpointing, config, tokens)
    parts["logits"] = tokens * config.num_codebooks * config.codebook_size * 4 * 2  # fp32 logits + their gradient
    parts["audio tokenizer"] = audio_tokenizer_params * 4
    parts = {name: value / GIB for name, value in parts.items()}
    parts["runtime"] = RUNTIME_GIB[device_type]
    parts["total"] = sum(parts.values())
    return parts


def activation_bytes(precision: str, gradient_checkpointing: bool, config, tokens: int) -> float:
    """What a backward pass keeps of `tokens` positions (see ACTIVATION_UNITS)."""
    layer = tokens * config.hidden_size * (2 if precision in ("bf16", "fp16") else 4)
    if gradient_checkpointing:
        return layer * (config.num_hidden_layers + ACTIVATION_UNITS)
    return layer * config.num_hidden_layers * ACTIVATION_UNITS


def available_memory_gib(device: str = "auto") -> tuple[str, float]:
    """The memory of the device training would use (`trainer.device`): the first CUDA GPU, else the machine's RAM."""
    if device != "cpu" and torch.cuda.is_available():
        properties = torch.cuda.get_device_properties(0)
        return properties.name, properties.total_memory / GIB
    return "CPU RAM", os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB
