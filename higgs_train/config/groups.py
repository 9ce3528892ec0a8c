"""The config groups that need nothing but their own fields: one dataclass each, its fields' types, defaults, help
and checks the only description of the group (the YAML files in configs/ and recipes/ set values over them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from higgs_train.builtins.assets import BUILTIN_PREFIX
from higgs_train.config.checks import ConfigError, Group, count, number, one_of, setting, shown
from higgs_train.data.tasks import TASKS

LOGGERS = ("jsonl", "wandb", "tensorboard")


@dataclass
class ModelConfig(Group):
    KEY = "model"
    name_or_path: str = setting("eustlb/higgs-v2", "the checkpoint in Transformers format: a hub id, a local folder or "
                                "builtin:tiny (a tiny random-weight one built on first use)")
    attn_implementation: str = setting("auto", "auto | flash_attention_2 | flex_attention | sdpa | eager",
                                       one_of("auto", "flash_attention_2", "flex_attention", "sdpa", "eager"))
    gradient_checkpointing: bool = setting(False, "recompute activations in the backward pass (less memory, slower)")
    use_text_head: bool = setting(False, "also train the text head on the target turns' closing tokens")
    weights_dtype: str = setting("auto", "frozen weights: auto (the 16-bit type of trainer.precision; fp32 under "
                                 "fp32) | bf16 | fp16 | fp32", one_of("auto", "bf16", "fp16", "fp32"))
    quantization: str = setting("none", "none | nf4 (QLoRA: the frozen decoder in 4-bit) | int8; needs adapters and "
                                "bitsandbytes", one_of("none", "nf4", "int8"))


@dataclass
class DataConfig(Group):
    KEY = "data"
    path: str | None = setting(None, "conversation JSONL, a folder written by `higgs-prep convert`, or "
                                  "builtin:demo (objective=sft and grpo)")
    max_examples: int | None = setting(None, "train on the first N rows only; null: every row",
                                          count(optional=True, why=", or null for every row"))
    min_seconds: float = setting(0.3, "clips shorter than this are bad rows (skipped or an error, per on_bad_row)",
                                 number(0))
    max_seconds: float = setting(30.0, "clips longer than this are bad rows (skipped or an error, per on_bad_row)",
                                 number(0, inclusive=False))
    max_positions: int = setting(2048, "longer conversations are skipped (counted) or fail, per on_bad_row; never "
                                 "truncated", count())
    on_bad_row: str = setting("fail", "skip | fail", one_of("skip", "fail"))
    pairs: str | None = setting(None, "objective=dpo: a folder written by `higgs-prep pairs`, a pairs JSONL, or "
                                   "builtin:demo-pairs")
    encode_batch_size: int = setting(8, "clips of identical length encoded together when codes are not cached",
                                     count())

    def check_path(self) -> None:
        """For the objectives that read conversations: `data.path` is set and exists."""
        if not self.path:
            raise ConfigError("data.path is not set; give data.path=/path/to/conversations.jsonl (or a folder written "
                              "by `higgs-prep convert`; recipe=smoke uses the built-in demo)")
        if not self.path.startswith(BUILTIN_PREFIX) and not Path(self.path).exists():
            raise ConfigError(f"data.path={self.path} does not exist; point it at a conversation JSONL or a folder "
                              "written by `higgs-prep convert`")

    def check(self) -> None:
        if self.max_seconds < self.min_seconds:
            raise ConfigError(f"data.max_seconds={shown(self.max_seconds)} is below data.min_seconds="
                              f"{shown(self.min_seconds)}")


@dataclass
class TaskConfig(Group):
    KEY = "task"
    name: str = setting("smart_voice", f"how a row becomes a conversation: {' | '.join(TASKS)}", one_of(*TASKS))


@dataclass
class PeftConfig(Group):
    KEY = "peft"
    type: str = setting("lora", "none (full fine-tuning) | lora (adapters)", one_of("none", "lora"))
    target_modules: list[str] = setting(help="the modules adapters are put on",
                                        factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    r: int = setting(16, "the LoRA rank", count(why=" (the LoRA rank, e.g. 16)"))
    alpha: float = setting(32, "the LoRA scale numerator (the update is scaled by alpha / r)",
                           number(0, inclusive=False))
    dropout: float = setting(0.05, "dropout on the adapters' input, in [0, 1)", number(0))
    use_dora: bool = setting(False, "DoRA: weight-decomposed LoRA")
    use_rslora: bool = setting(False, "rank-stabilised LoRA: scale by alpha / sqrt(r)")
    modules_to_save: list[str] = setting(help="modules trained in full beside the adapters (e.g. audio_lm_head)",
                                         factory=list)

    def check(self) -> None:
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"peft.dropout={shown(self.dropout)} must be in [0, 1)")


@dataclass
class FreezeConfig(Group):
    KEY = "freeze"
    trainable: list[str] | None = setting(None, "full fine-tuning of these modules only (the rest frozen); null: "
                                             "every parameter is trained")


@dataclass
class OptimConfig(Group):
    KEY = "optim"
    name: str = setting("adamw", "adamw | adamw8bit | paged_adamw8bit (bitsandbytes: 2 bytes of state per trained "
                        "parameter)", one_of("adamw", "adamw8bit", "paged_adamw8bit"))
    lr: float = setting(1.0e-4, "the peak learning rate", number(0, inclusive=False))
    weight_decay: float = setting(0.0, "AdamW's decoupled weight decay", number(0))
    betas: list[float] = setting(help="AdamW's (beta1, beta2); beta2 0.95 forgets the first steps' large gradients "
                                 "within ~20 steps (BENCHMARKS.md)", factory=lambda: [0.9, 0.95])
    warmup_steps: Any = setting("auto", "steps of linear warmup from 0 (an integer >= 0); auto: 10% of "
                                "trainer.max_steps", lambda key, value: _warmup(value))
    scheduler: str = setting("cosine", "cosine | linear | constant", one_of("cosine", "linear", "constant"))
    max_grad_norm: float = setting(0.125, "gradient clipping on the mean-over-codebooks loss", number(0))
    fused: Any = setting("auto", "auto: the fused AdamW kernel on CUDA, the default elsewhere | true | false",
                         one_of("auto", True, False))
    text_loss_weight: float = setting(1.0, "weight of the text-head loss when model.use_text_head", number(0))


def _warmup(value) -> None:
    if value != "auto" and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
        raise ConfigError(f"optim.warmup_steps={shown(value)} must be an integer >= 0, or auto (10% of "
                          "trainer.max_steps)")


@dataclass
class LoggerConfig(Group):
    KEY = "logger"
    name: str = setting("jsonl", "jsonl (metrics.jsonl only) | wandb | tensorboard (as well as metrics.jsonl)",
                        one_of(*LOGGERS))
    project: str = setting("higgs-train", "the W&B project (logger=wandb)")
    mode: str = setting("online", "W&B: online | offline (written under the run directory)",
                        one_of("online", "offline"))


@dataclass
class TrainerConfig(Group):
    KEY = "trainer"
    max_steps: int = setting(1000, "optimizer steps (each one gradient_accumulation_steps micro-batches per process)",
                             count())
    batch_size: int = setting(2, "per micro-batch when max_tokens_per_batch is null: rows (objective=sft), pairs of "
                              "answers (dpo) or prompts, each sampled objective.samples_per_prompt times (grpo)",
                              count())
    max_tokens_per_batch: int | None = setting(None, "token budget: bucketed padded batches (rows x longest), or "
                                                  "the packed row length; null: trainer.batch_size batches")
    packing: bool = setting(False, "conversations back to back in one row, no padding (needs max_tokens_per_batch); "
                            "pays with flash_attention_2 only")
    gradient_accumulation_steps: int = setting(1, "micro-batches per optimizer step and process", count())
    precision: str = setting("bf16", "bf16 | fp16 (loss scaling) | fp32", one_of("bf16", "fp16", "fp32"))
    device: str = setting("auto", "auto (the accelerator Accelerate finds) | cpu | cuda", one_of("auto", "cpu", "cuda"))
    compile: bool = setting(False, "torch.compile the model (inductor)")
    log_every_n_steps: int = setting(10, "steps between metric lines", count())
    save_every_n_steps: int | None = setting(500, "checkpoint for exact resume (resume=auto); null: only the "
                                                "final weights are saved", count(optional=True))
    keep_last_n: int | None = setting(2, "complete checkpoints kept; older ones are pruned (null keeps all)",
                                         count(optional=True))
    early_stopping_patience: int | None = setting(None, "evaluations without an improvement of eval.best_metric "
                                                     "before the run stops; null: never", count(optional=True))
    max_bad_steps: int = setting(3, "non-finite loss/gradient steps in a row before the run stops (with a "
                                 "checkpoint)", count())
    peak_tflops: float | None = setting(None, "the device's peak for MFU when it is not in the built-in table",
                                           number(0, inclusive=False, optional=True))
    num_workers: int = setting(0, "DataLoader workers that build and collate conversations", count(0))

    def check(self) -> None:
        if self.packing and self.max_tokens_per_batch is None:
            raise ConfigError("trainer.packing=true needs trainer.max_tokens_per_batch (the length of a packed row)")
