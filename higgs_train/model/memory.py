"""A first-order estimate of training memory, so a dry run can say whether a config fits before it loads weights."""

from __future__ import annotations

import os

import torch

GIB = 1024**3


def estimate_training_memory(config, total_params: int, trainable_params: int, tokens: int, precision: str,
                             gradient_checkpointing: bool) -> dict[str, float]:
    """GiB per component. Weights are kept in fp32 (autocast computes in bf16/fp16); AdamW keeps two fp32 states.
    Activations follow the usual decoder count of ~34 x hidden bytes per token per layer at 16-bit (attention scores
    are not stored with SDPA / FlashAttention); with checkpointing only each layer's input is kept."""
    act_bytes = 2 if precision in ("bf16", "fp16") else 4
    per_token_layer = (2 if gradient_checkpointing else 17) * config.hidden_size * act_bytes
    logits = tokens * config.num_codebooks * config.codebook_size * 4 * 2  # fp32 logits + their gradient
    parts = {
        "weights": total_params * 4,
        "gradients": trainable_params * 4,
        "optimizer": trainable_params * 8,
        "activations": tokens * config.num_hidden_layers * per_token_layer,
        "logits": logits,
    }
    parts = {name: value / GIB for name, value in parts.items()}
    parts["total"] = sum(parts.values())
    return parts


def available_memory_gib() -> tuple[str, float]:
    """The memory of the device training would use: the first CUDA GPU, else the machine's RAM."""
    if torch.cuda.is_available():
        properties = torch.cuda.get_device_properties(0)
        return properties.name, properties.total_memory / GIB
    return "CPU RAM", os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB
