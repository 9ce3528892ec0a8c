"""The whole run's config: the groups, the root's own keys, and the checks that span groups."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import MISSING

from higgs_train.config.checks import ConfigError, Group, setting, shown
from higgs_train.config.generation import EvalConfig
from higgs_train.config.groups import (
    DataConfig,
    FreezeConfig,
    LoggerConfig,
    ModelConfig,
    OptimConfig,
    PeftConfig,
    TaskConfig,
    TrainerConfig,
)
from higgs_train.config.objectives import ObjectiveConfig
from higgs_train.runtime.logs import NOTICE, logger


def _seed(key: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
        raise ConfigError(f"{key}={shown(value)} must be an integer in [0, 2**32)")


def _resume(key: str, value) -> None:
    if value not in (None, "auto") and not Path(value).is_dir():
        raise ConfigError(f"{key}={value} does not exist; use resume=auto or a <run_dir>/checkpoints/step_00000500 "
                          "folder")


@dataclass
class RunConfig(Group):
    """The whole run: one field per group (Hydra fills each from its chosen YAML), the root's own keys, and the
    checks that span groups (`check`), run once every group has passed its own."""

    model: ModelConfig = MISSING
    data: DataConfig = MISSING
    task: TaskConfig = MISSING
    peft: PeftConfig = MISSING
    freeze: FreezeConfig = MISSING
    optim: OptimConfig = MISSING
    trainer: TrainerConfig = MISSING
    eval: EvalConfig = MISSING
    logger: LoggerConfig = MISSING
    objective: ObjectiveConfig = MISSING
    seed: int = setting(0, "the seed of data order, held-out rows, initialisation and sampling", _seed)
    dry_run: bool = setting(False, "check the whole run (data, model, one step's memory) without training")
    resume: str | None = setting(None, "auto: continue from the newest complete checkpoint in the run dir | a "
                                    "checkpoint folder", _resume)
    overwrite: bool = setting(False, "replace a finished or dead run in the same run dir")
    verbose: bool = setting(False, "also the libraries' warnings and loading bars (HIGGS_TRAIN_VERBOSE=1 for every "
                            "tool)")
    out: str = setting("outputs", "the run's folder (configs/config.yaml: outputs/DATE/TIME); hydra.run.dir follows "
                       "it, and either may be given")

    def check(self) -> None:
        if self.objective.reads_data_path:  # first: a wrong path is the likeliest mistake, answered at once
            self.data.check_path()
        if self.freeze.trainable is not None and self.peft.type != "none":
            raise ConfigError(f"freeze.trainable={list(self.freeze.trainable)} is for full fine-tuning (peft=none); "
                              "with adapters, train extra modules with peft.modules_to_save")
        budget = self.trainer.max_tokens_per_batch
        if budget is not None and budget < self.data.max_positions:
            raise ConfigError(f"trainer.max_tokens_per_batch={budget!r} must be an integer >= data.max_positions="
                              f"{self.data.max_positions} (or null for fixed trainer.batch_size batches)")
        self._check_weights()
        self.objective.check_with(self.data, self.peft, self.trainer, self.eval)
        warmup = self.optim.warmup_steps
        if warmup != "auto" and warmup >= self.trainer.max_steps:
            logger.log(NOTICE, f"optim.warmup_steps={warmup} is not shorter than the run (trainer.max_steps="
                               f"{self.trainer.max_steps}): the lr climbs all run long and never reaches optim.lr="
                               f"{self.optim.lr:g}; optim.warmup_steps=auto warms up for 10% of the run")

    def _check_weights(self) -> None:
        """Combinations of frozen-weight precision, quantization and fine-tuning that cannot train."""
        weights, precision, quantization = self.model.weights_dtype, self.trainer.precision, self.model.quantization
        if weights in ("bf16", "fp16") and weights != precision:
            raise ConfigError(f"model.weights_dtype={weights} needs trainer.precision={weights} (16-bit weights are "
                              f"computed in their own type, and trainer.precision={precision} is another); use "
                              f"model.weights_dtype=auto or fp32, or trainer.precision={weights}")
        if weights in ("bf16", "fp16") and self.peft.type == "none":
            raise ConfigError(f"model.weights_dtype={weights} is for adapters (a frozen 16-bit base); full fine-tuning "
                              "keeps fp32 master weights, its frozen part under a freeze preset too: use "
                              "model.weights_dtype=auto, or adapters (peft=lora_audio, ...)")
        if quantization != "none" and self.peft.type == "none":
            raise ConfigError(f"model.quantization={quantization} quantizes the frozen base for adapters (QLoRA); a "
                              "quantized model cannot be fully fine-tuned: choose adapters (peft=lora_audio, ...) or "
                              "model.quantization=none")
