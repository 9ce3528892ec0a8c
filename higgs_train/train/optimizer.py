"""`optim.name`: AdamW (fp32 states, 8 bytes per trained parameter), or bitsandbytes' 8-bit AdamW (2 bytes) and its
paged variant (states paged to CPU memory under pressure; on CPU it runs as the plain 8-bit one)."""

from __future__ import annotations

import torch
from omegaconf import DictConfig


def build_optimizer(parameters: list[torch.nn.Parameter], optim_cfg: DictConfig, device: torch.device):
    kwargs = {"lr": optim_cfg.lr, "weight_decay": optim_cfg.weight_decay, "betas": tuple(optim_cfg.betas)}
    if optim_cfg.name == "adamw":
        fused = device.type == "cuda" if optim_cfg.fused == "auto" else bool(optim_cfg.fused)
        return torch.optim.AdamW(parameters, fused=fused or None, **kwargs)
    import bitsandbytes as bnb

    optimizer = {"adamw8bit": bnb.optim.AdamW8bit, "paged_adamw8bit": bnb.optim.PagedAdamW8bit}[optim_cfg.name]
    return optimizer(parameters, **kwargs)


def warmup_steps(optim_cfg: DictConfig, max_steps: int) -> int:
    """`optim.warmup_steps`: a number of steps, or auto, 10% of the run (at least one step), which keeps the first
    Adam updates, made from a second-moment estimate of a few gradients, from kicking the adapters into a spike
    (5% still let a spike through in 5 of 30 learns-to-stop runs: BENCHMARKS.md)."""
    if optim_cfg.warmup_steps == "auto":
        return max(1, round(0.1 * max_steps))
    return optim_cfg.warmup_steps
