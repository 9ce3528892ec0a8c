"""The objective group: one dataclass per objective, chosen by `objective=NAME` (configs/objective/NAME.yaml starts
from its schema). The objectives' code (higgs_train/objectives/) reads these; nothing here imports it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from higgs_train.builtins.assets import BUILTIN_PREFIX
from higgs_train.config.checks import ConfigError, Group, count, number, one_of, setting
from higgs_train.config.generation import EvalConfig
from higgs_train.config.groups import DataConfig, PeftConfig, TrainerConfig
from higgs_train.runtime.renamed import RENAMED_REWARDS


@dataclass
class ObjectiveConfig(Group):
    KEY = "objective"
    name: str = setting("sft", "sft | dpo | grpo (each with its own settings below)", one_of("sft", "dpo", "grpo"))
    reads_data_path = True  # sft and grpo read conversations from data.path; dpo reads data.pairs

    def batch_unit(self, batch_size: int) -> str:
        """What one micro-batch of `trainer.batch_size` holds, as the console says it."""
        return f"{batch_size} rows"

    def check_with(self, data: DataConfig, peft: PeftConfig, trainer: TrainerConfig, eval: EvalConfig) -> None:
        """What this objective needs of the other groups (and of the launch), checked before any weight loads."""

    def _check_batches(self, trainer: TrainerConfig, what: str) -> None:
        if trainer.max_tokens_per_batch is not None or trainer.packing:
            raise ConfigError(f"objective={self.name} batches trainer.batch_size {what}; set "
                              "trainer.max_tokens_per_batch=null and trainer.packing=false")


@dataclass
class SFTConfig(ObjectiveConfig):
    """Supervised fine-tuning: cross-entropy of every target code and stream-EOS (the mean over codebooks)."""

    name: str = setting("sft", "sft", one_of("sft"))


@dataclass
class DPOConfig(ObjectiveConfig):
    """Direct preference optimisation on pairs of answers (data.pairs)."""

    reads_data_path = False
    name: str = setting("dpo", "dpo", one_of("dpo"))
    beta: float = setting(0.01, "the preference temperature: 0.01 with summed log-probabilities (hundreds of targets "
                          "a clip), about 0.1 with length_normalized", number(0, inclusive=False))
    length_normalized: bool = setting(False, "each answer's log-probability divided by its number of targets")
    sft_weight: float = setting(0.0, "> 0 adds the chosen answer's cross-entropy (per target), as RPO does",
                                number(0))
    reference: str = setting("live", "live: the policy with its adapters off | precomputed: the initial model's, "
                             "computed once at set-up and kept beside the pairs (full fine-tuning, ZeRO-3)",
                             one_of("live", "precomputed"))

    def batch_unit(self, batch_size: int) -> str:
        return f"{batch_size} pairs"

    def check_with(self, data: DataConfig, peft: PeftConfig, trainer: TrainerConfig, eval: EvalConfig) -> None:
        if not data.pairs:
            raise ConfigError("objective=dpo needs data.pairs: a folder written by `higgs-prep pairs` (the model's own "
                              "judged samples) or a pairs JSONL ({\"messages\": [prompt], \"chosen\": \"a.wav\", "
                              "\"rejected\": \"b.wav\"} per line)")
        if not data.pairs.startswith(BUILTIN_PREFIX) and not Path(data.pairs).exists():
            raise ConfigError(f"data.pairs={data.pairs} does not exist")
        if self.reference == "live" and peft.type == "none":
            raise ConfigError("objective.reference=live switches the adapters off to get the reference, and full "
                              "fine-tuning has none; use objective.reference=precomputed")
        if self.reference == "live" and os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE") == "3":
            raise ConfigError("objective.reference=live needs a forward pass of its own per step, which ZeRO-3's "
                              "sharded weights make every process take part in; use objective.reference=precomputed")
        self._check_batches(trainer, "pairs (both answers of a pair padded together)")


def reward_names() -> tuple[str, ...]:
    """The metrics GRPO may train on: the registry's, by their names."""
    from higgs_train.evaluate.metrics import METRICS

    return tuple(name for name, metric in METRICS.items() if metric.reward)


def _rewards(key: str, rewards: dict) -> None:
    for old in rewards:
        if old in RENAMED_REWARDS:
            raise ConfigError(f"{key}.{old} is now {key}.{RENAMED_REWARDS[old]} (rewards carry the metric registry's "
                              "names)")
    unknown = sorted(set(rewards) - set(reward_names()))
    if unknown:
        raise ConfigError(f"{key} has {unknown}; the rewards are {list(reward_names())}")
    for name, weight in rewards.items():
        number(0)(f"{key}.{name}", weight)
    if not any(rewards.values()):
        raise ConfigError(f"every {key} weight is 0, so no answer is better than another; give at least one a weight "
                          f"above 0 (e.g. {key}.stopped=1.0)")


@dataclass
class GRPOConfig(ObjectiveConfig):
    """Online preference optimisation: a group of sampled answers per prompt, each scored by the judges, advantages
    normalised within the group, a clipped policy-gradient loss and a KL penalty to the reference (adapters off)."""

    name: str = setting("grpo", "grpo", one_of("grpo"))
    samples_per_prompt: int = setting(8, "answers sampled per prompt, a group (trainer.batch_size prompts per "
                                      "micro-batch)", count(2, why=" (advantages compare the answers of one prompt)"))
    temperature: float = setting(0.8, "the sampling temperature of the answers", number(0, inclusive=False))
    max_new_tokens: int = setting(500, "the token limit an answer may run to (one that reaches it did not stop)",
                                  count(why=" (the token limit a sampled answer may run to)"))
    rewards: dict[str, Any] = setting(
        help="weights in [0, 1] of metrics as rewards, by the registry's names (evaluate/metrics.py); wer and "
        "speaker_similarity need eval.asr_model / eval.speaker_model", check=_rewards,
        factory=lambda: {"stopped": 1.0, "duration_error": 1.0, "trailing_silence": 0.0, "loop_share": 1.0,
                         "wer": 0.0, "speaker_similarity": 0.0})
    clip: float = setting(0.2, "the ratio's clip range (1 +- clip)", number(0, inclusive=False))
    kl_beta: float = setting(0.04, "weight of the k3 KL estimate to the reference; 0: reference-free", number(0))
    loss_type: str = setting("grpo", "grpo: mean over each answer's tokens, then over answers | dapo: over all tokens",
                             one_of("grpo", "dapo"))

    def batch_unit(self, batch_size: int) -> str:
        return f"{batch_size} prompts x {self.samples_per_prompt} samples each"

    def check_with(self, data: DataConfig, peft: PeftConfig, trainer: TrainerConfig, eval: EvalConfig) -> None:
        from higgs_train.evaluate.judges import JUDGE_SETTINGS
        from higgs_train.evaluate.metrics import METRICS

        for name, weight in self.rewards.items():
            setting = METRICS[name].needs
            if weight and setting and not getattr(eval, setting.removeprefix("eval.")):
                raise ConfigError(f"objective.rewards.{name}={weight} needs a judge to measure it, and {setting} is "
                                  f"not set; set {setting} (e.g. {JUDGE_SETTINGS[setting].example}, a folder or the "
                                  f"local cache) or objective.rewards.{name}=0")
        if self.kl_beta > 0 and peft.type == "none":
            raise ConfigError("objective.kl_beta > 0 compares with the policy's adapters switched off, and full "
                              "fine-tuning has none; set objective.kl_beta=0")
        if os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE") == "3":
            raise ConfigError("objective=grpo generates a different length on each process, which ZeRO-3's sharded "
                              "weights cannot do; use DDP or ZeRO-2")
        self._check_batches(trainer, "prompts (each sampled samples_per_prompt times)")


OBJECTIVE_CONFIGS = {"sft": SFTConfig, "dpo": DPOConfig, "grpo": GRPOConfig}
