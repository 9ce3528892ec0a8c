"""Objectives: what a training step minimises, one module each, behind one small interface the recipe calls
without knowing any objective by name.

An objective is built once per run (`build_objective`) and gives:
- `training_data(data_path, processor, show_progress)`: the run's `TrainingData` (what its batches are made of);
- `prepare(model, window)`: the accumulation window's micro-batches as the loss needs them (an online objective
  samples here) and the global totals its loss is normalised by, as a `Window`;
- `loss(model, batch, window)`: one micro-batch's loss (already divided by the window's totals) and the detached
  sums its metrics are made of, added over micro-batches and processes by the recipe;
- `report(sums, window)`: the step's metrics, with `loss` among them;
- `loss_label`: what the console says the loss is (e.g. "mean over codebooks");
- `headline` (optional): the metric the console leads with where the loss says little (GRPO's surrogate loss is ~0
  by construction; its reward is what moves).
A module may also define `check_config(cfg)`, run with the other config checks before any weight loads, and
`memory_extras(cfg, model_config, positions)`, the GiB its step needs beyond one forward and backward pass.

Adding one: a module here with a class of that shape, a `configs/objective/NAME.yaml`, and a line below.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

OBJECTIVES = {
    "sft": "higgs_train.objectives.sft:SupervisedFineTuning",
    "dpo": "higgs_train.objectives.dpo:DirectPreference",
    "grpo": "higgs_train.objectives.grpo:GroupRelativePolicy",
}
READS_DATA_PATH = ("sft", "grpo")  # checked before any heavy import (dpo reads data.pairs)


@dataclass
class Window:
    """One optimizer step's work: the micro-batches the loss runs on, the totals (over every micro-batch and process)
    its loss is divided by, the supervised frames they hold (all processes), and what the report needs besides."""

    batches: list[dict]
    totals: dict[str, torch.Tensor]
    frames: int
    info: dict = field(default_factory=dict)


def objective_module(name: str):
    return importlib.import_module(OBJECTIVES[name].partition(":")[0])


def check_objective_config(cfg) -> None:
    check = getattr(objective_module(cfg.objective.name), "check_config", None)
    if check is not None:
        check(cfg)


def build_objective(cfg, accelerator, model, model_config):
    module, _, name = OBJECTIVES[cfg.objective.name].partition(":")
    return getattr(importlib.import_module(module), name)(cfg, accelerator, model, model_config)
