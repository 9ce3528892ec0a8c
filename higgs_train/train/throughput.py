"""Throughput figures for the metrics: peak memory, model FLOPs per token and MFU against the device's peak.

FLOPs follow the usual dense-transformer count: 2 per parameter per token forward, 2 more backward to the
activations, 2 more for each trained parameter's gradient, and another forward under gradient checkpointing.
Embedding tables do no multiply-adds and are left out.
"""

from __future__ import annotations

import resource

import torch
from torch import nn

# Dense bf16/fp16 tensor-core peaks (FLOP/s) by device-name fragment; the first match wins.
PEAK_FLOPS = (
    ("H100 PCIe", 756e12), ("H100", 989e12), ("H200", 989e12), ("GH200", 989e12), ("B200", 2250e12),
    ("A100", 312e12), ("L40S", 362e12), ("L4", 121e12), ("A10G", 70e12), ("RTX 4090", 165e12),
)


def peak_flops(device: torch.device, precision: str, override_tflops: float | None) -> float | None:
    """The device's peak for this precision, or None when unknown (then no MFU is reported)."""
    if override_tflops:
        return override_tflops * 1e12
    if device.type != "cuda" or precision not in ("bf16", "fp16"):
        return None
    name = torch.cuda.get_device_name(device)
    return next((flops for fragment, flops in PEAK_FLOPS if fragment in name), None)


def parameter_size(parameter: torch.Tensor) -> int:
    """Its number of elements, also when ZeRO-3 holds only a shard of it on this process or bitsandbytes packs two
    4-bit values a byte."""
    quant_state = getattr(parameter, "quant_state", None)
    if quant_state is not None and getattr(quant_state, "shape", None) is not None:
        return quant_state.shape.numel()
    return getattr(parameter, "ds_numel", None) or parameter.numel()


def flops_per_token(model: nn.Module, gradient_checkpointing: bool) -> float:
    embedding = sum(parameter_size(p) for m in model.modules() if isinstance(m, nn.Embedding) for p in m.parameters())
    dense = sum(parameter_size(p) for p in model.parameters()) - embedding
    trained = sum(parameter_size(p) for p in model.parameters() if p.requires_grad)
    forward_passes = 2 if gradient_checkpointing else 1
    return 2 * dense * forward_passes + 2 * dense + 2 * trained


def peak_memory_gb(device: torch.device) -> float:
    """Peak allocated accelerator memory, or the process's peak resident memory on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
