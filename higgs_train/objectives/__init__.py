"""Objectives: what a training step minimises, one module each, behind one small interface the recipe calls
without knowing any objective by name.

An objective is built once per run (`build_objective`) and gives:
- `training_data(plan, processor)`: the run's `TrainingData` (what its batches are made of), from
  the `DataPlan` resolved at the run's start;
- `prepare(model, window)`: the accumulation window's micro-batches as the loss needs them (an online objective
  samples here) and the global totals its loss is normalised by, as a `Window`;
- `loss(model, batch, window)`: one micro-batch's loss (already divided by the window's totals) and the detached
  sums its metrics are made of, added over micro-batches and processes by the recipe;
- `report(sums, window)`: the step's metrics, with `loss` among them;
- `loss_label`: what the console says the loss is (e.g. "mean over codebooks");
- `headline` (optional): the metric the console leads with where the loss says little (GRPO's surrogate loss is ~0
  by construction; its reward is what moves).
A class may also define `memory_extras(model_config, positions)`, the GiB its step needs beyond one forward and
backward pass. Its settings, their checks included, are its dataclass in higgs_train/config/objectives.py.

Adding one: a module here with a class of that shape, its settings' dataclass (in `OBJECTIVE_CONFIGS`), a
`configs/objective/NAME.yaml` starting from that schema, and a branch in `build_objective`.
"""

from __future__ import annotations

from higgs_train.config import RunConfig
from higgs_train.objectives.dpo import DirectPreference
from higgs_train.objectives.grpo import GroupRelativePolicy
from higgs_train.objectives.sft import SupervisedFineTuning


def build_objective(run: RunConfig, accelerator, model, model_config, model_path: str):
    """The run's objective, given its own settings and only the other settings it reads (`model_path`: the
    checkpoint, resolved at the run's start)."""
    objective = run.objective
    if objective.name == "dpo":
        return DirectPreference(objective, accelerator, model, model_config, model_path, run.model,
                                run.trainer.precision)
    if objective.name == "grpo":
        return GroupRelativePolicy(objective, accelerator, model, model_config, run.eval, run.trainer,
                                   run.model.gradient_checkpointing)
    return SupervisedFineTuning(objective, accelerator, model, model_config, run.optim.text_loss_weight)
