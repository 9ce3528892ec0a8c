"""Which dtype each weight is kept in. An adapter run's frozen base follows `model.weights_dtype` (auto: the 16-bit
type of `trainer.precision`, fp32 under fp32), so it takes 2 bytes a parameter instead of 4. What trains (LoRA A/B,
`modules_to_save` copies) is kept in fp32 as master weights, as PEFT does, and full fine-tuning keeps everything in
fp32; mixed precision computes in the 16-bit type either way."""

from __future__ import annotations

import torch

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def frozen_weights_dtype(weights_dtype: str, precision: str) -> torch.dtype:
    return DTYPES[precision if weights_dtype == "auto" else weights_dtype]


def load_dtype(cfg) -> torch.dtype:
    """The dtype the checkpoint is loaded in, which is also that of the frozen weights (what trains is cast up
    afterwards). Full fine-tuning loads fp32, also under a `freeze` preset: a preset trains part of every decoder layer
    (the audio DualFFN and its norms), and the layer's text and audio halves must share the residual stream's dtype."""
    if cfg.peft.type == "none":
        return torch.float32
    return frozen_weights_dtype(cfg.model.weights_dtype, cfg.trainer.precision)


def keep_trainable_in_fp32(model):
    """Casts every trainable parameter that is not fp32 (e.g. a `modules_to_save` copy of a bf16 head) up to fp32."""
    for parameter in model.parameters():
        if parameter.requires_grad and parameter.dtype != torch.float32:
            parameter.data = parameter.data.float()
    return model
