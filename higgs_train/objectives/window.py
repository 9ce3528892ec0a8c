"""What one optimizer step of an objective works on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


@dataclass
class Window:
    """One optimizer step's work: the micro-batches the loss runs on, the totals (over every micro-batch and process)
    its loss is divided by, the supervised frames they hold (all processes), and what the report needs besides."""

    batches: list[dict]
    totals: dict[str, torch.Tensor]
    frames: int
    info: dict = field(default_factory=dict)
