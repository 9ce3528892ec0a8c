"""`objective=grpo`: online preference optimisation. Each step samples a group of `objective.samples_per_prompt`
answers per prompt from the current policy (batched, with the KV cache; each process for its own prompts), scores
every answer by a weighted sum of rewards read off the metric registry's judges, and trains on what it judged.

- Rewards, each in [0, 1], are metrics of the registry (`evaluate/metrics.py`: a metric with a `reward`), weighed by
  their names in `objective.rewards`: stopped (1 if it emitted stream-EOS before the token limit), duration_error
  (1 at the expected length, 0 at half or twice it), trailing_silence (1 - its share), loop_share (1 - its share),
  wer (NeMo's piecewise line: 1 at 0, 0.5 at 0.1, 0 from 0.5) and speaker_similarity (0.5 at 0.6, 1 from 0.9), the
  last two where their judges are given. An answer that never stopped scores 0 on every term, as in NeMo's online
  preference code. A judge that raises, or returns NaN, gives that answer the lowest reward and
  a counted warning.
- Advantages: (reward - group mean) / (group std + 1e-4); a group whose rewards are all equal teaches nothing.
- Loss per token of the sampled audio (the one mask of `model/loss.py`): -(ratio * advantage) + kl_beta * k3(KL to
  the reference, the policy with its adapters off), the ratio clipped to 1 +- objective.clip; averaged over each
  answer's tokens per codebook, then over codebooks and answers (`loss_type=grpo`), or over every token of the
  window (`dapo`). One update per group, so the ratio is 1 and `clip_fraction` stays 0.
- Sampling: `objective.temperature`, top-k off, repetition-aware sampling off (the answers must be the policy's own
  samples for the gradient to be right).
"""

from __future__ import annotations

import math
import time

import torch

from higgs_train.config import ConfigError
from higgs_train.config.generation import EvalConfig, GenerationConfig
from higgs_train.config.groups import TrainerConfig
from higgs_train.config.objectives import GRPOConfig, reward_names
from higgs_train.data.collator import prompt_messages
from higgs_train.data.loader import build_dataloader, build_training_data
from higgs_train.data.source import DataPlan
from higgs_train.evaluate.judge_answer import AnswerJudge
from higgs_train.evaluate.judges import Judges
from higgs_train.evaluate.metrics import METRICS
from higgs_train.evaluate.samples import generate_codes
from higgs_train.model.loss import IGNORE_INDEX, MODEL_INPUTS, per_conversation, target_logprobs
from higgs_train.objectives.window import Window
from higgs_train.runtime.logs import logger


def rewards_of(record: dict) -> dict[str, float]:
    """Each reward term of one judged answer, in [0, 1], by metric name (missing where it was not measured); 0 for
    every term of an answer that never stopped."""
    return {name: METRICS[name].reward(record[name]) if record["stopped"] else 0.0 for name in reward_names()
            if record.get(name) is not None}


class GroupRelativePolicy:
    loss_label = "GRPO, per answer"
    headline = "reward"  # the mean reward of the step's answers

    def __init__(self, config: GRPOConfig, accelerator, model, model_config, eval: EvalConfig, trainer: TrainerConfig,
                 gradient_checkpointing: bool):
        """`eval`: the judges and how they measure; `trainer` and `gradient_checkpointing`: the memory plan's."""
        self.accelerator, self.model_config, self.eval, self.trainer = accelerator, model_config, eval, trainer
        self.objective, self.gradient_checkpointing = config, gradient_checkpointing
        self.weights = {k: float(v) for k, v in config.rewards.items() if v}
        self.sampling = GenerationConfig(max_new_tokens=config.max_new_tokens, do_sample=True,
                                         temperature=config.temperature, ras_win_len=None)
        needs = {name: METRICS[name].needs for name in self.weights if METRICS[name].needs}
        self.judges = Judges.load(eval) if needs else Judges()
        for name, setting in needs.items():
            if not self.judges.loaded(setting):
                raise ConfigError(f"objective.rewards.{name}={self.weights[name]} cannot be measured: "
                                  f"{setting}={getattr(eval, setting.removeprefix('eval.'))} did not load (the notice "
                                  f"above says why); fix {setting} or set objective.rewards.{name}=0")
        self.failed_judgements = 0

    def training_data(self, plan: DataPlan, processor):
        self.collator = None
        self.judge = AnswerJudge(processor.audio_tokenizer, self.eval, self.judges, metrics=("stopped", *self.weights))
        data = build_training_data(plan, processor, self.model_config)
        self.collator = data.collator
        data.dataloader, data.sampler = build_dataloader(data.training, list, plan.trainer, plan.seed)  # prompts
        return data

    # ---- sampling and judging ----------------------------------------------------------------------------------
    def _judge(self, conversation: dict, codes: torch.Tensor, stopped: bool) -> dict[str, float]:
        try:
            record = self.judge(conversation, codes, stopped)
            broken = [k for k, v in record.items() if isinstance(v, float) and not math.isfinite(v)]
            if broken:
                raise ValueError(f"a judge returned {record[broken[0]]} for {broken[0]}")
            terms = rewards_of(record)
        except Exception as error:  # a judge's failure costs this answer its reward, never the run
            self.failed_judgements += 1
            logger.warning(f"judging an answer to {conversation['id']} failed ({type(error).__name__}: "
                           f"{str(error)[:200]}); it gets the lowest reward ({self.failed_judgements} so far)")
            return {name: 0.0 for name in self.weights}
        return terms

    @torch.no_grad()
    def _sample(self, model, prompts: list[dict]) -> tuple[dict, dict]:
        """The training batch of prompt + answer rows (group after group) and the group's rewards."""
        unwrapped = self.accelerator.unwrap_model(model)
        group = self.objective.samples_per_prompt
        with self.accelerator.autocast():
            generated = generate_codes(unwrapped, self.collator, [p for p in prompts for _ in range(group)],
                                       self.sampling)
        rows, terms = [], []
        for index, (codes, stopped) in enumerate(generated):
            prompt = prompts[index // group]
            answer = {"type": "audio", "codes": codes, "stopped": stopped}
            rows.append({"id": prompt["id"], "messages": [*prompt_messages(prompt["messages"]),
                                                          {"role": "assistant", "content": [answer],
                                                           "supervised": True}]})
            terms.append(self._judge(prompt, codes, stopped))
        reward = torch.tensor([sum(self.weights[k] * t.get(k, 0.0) for k in self.weights) for t in terms])
        grouped = reward.reshape(-1, group)
        advantages = ((grouped - grouped.mean(1, keepdim=True)) / (grouped.std(1, keepdim=True) + 1e-4)).reshape(-1)
        batch = self.collator(rows)
        batch["advantages"] = advantages
        info = {"reward": reward, "spread": grouped.std(1), "terms": {k: torch.tensor([t.get(k, 0.0) for t in terms])
                                                                      for k in self.weights}}
        return batch, info

    def prepare(self, model, window: list[list[dict]]) -> Window:
        started = time.time()
        was_training = model.training
        model.eval()
        sampled = [self._sample(model, prompts) for prompts in window]
        model.train(was_training)
        rewards = torch.cat([info["reward"] for _, info in sampled])
        spreads = torch.cat([info["spread"] for _, info in sampled])
        local = [len(rewards), sum(int((b["audio_labels"] != IGNORE_INDEX).sum()) for b, _ in sampled),
                 sum(int((b["audio_labels"][..., 0] != IGNORE_INDEX).sum()) for b, _ in sampled), float(rewards.sum()),
                 float(spreads.sum()), len(spreads),
                 *(float(sum(info["terms"][k].sum() for _, info in sampled)) for k in self.weights)]
        totals = self.accelerator.reduce(torch.tensor(local, dtype=torch.float64, device=self.accelerator.device),
                                         "sum").cpu()
        answers, tokens, frames, reward, spread, groups = totals[:6].tolist()
        info = {"generation_s": time.time() - started, "started": started, "reward": reward / max(answers, 1),
                "answers": answers / self.accelerator.num_processes,
                "spread": spread / max(groups, 1),
                "terms": {k: float(v) / max(answers, 1) for k, v in zip(self.weights, totals[6:].tolist())}}
        return Window([batch for batch, _ in sampled], {"answers": torch.tensor(max(answers, 1.0)),
                                                        "tokens": torch.tensor(max(tokens, 1.0))},
                      frames=int(frames), info=info)

    # ---- the loss ----------------------------------------------------------------------------------------------
    def _reference(self, model, batch: dict) -> torch.Tensor:
        unwrapped = self.accelerator.unwrap_model(model)
        with torch.no_grad(), unwrapped.disable_adapter(), self.accelerator.autocast():
            return target_logprobs(unwrapped, batch, self.model_config).logprobs

    def loss(self, model, batch: dict, window: Window) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        inputs = {k: v for k, v in batch.items() if k in (*MODEL_INPUTS, "audio_labels")}
        scored = target_logprobs(model, inputs, self.model_config)
        mask = scored.mask.float()
        advantage = batch["advantages"].to(scored.logprobs.device)[scored.conversation][:, None]
        ratio = torch.exp(scored.logprobs - scored.logprobs.detach())
        clip = self.objective.clip
        clipped = torch.clamp(ratio, 1 - clip, 1 + clip)
        per_token = -torch.minimum(ratio * advantage, clipped * advantage)
        kl = torch.zeros_like(per_token)
        if self.objective.kl_beta > 0:
            delta = self._reference(model, inputs) - scored.logprobs
            kl = torch.exp(delta) - delta - 1
            per_token = per_token + self.objective.kl_beta * kl
        per_token = per_token * mask
        totals = {k: v.to(per_token.device) for k, v in window.totals.items()}
        if self.objective.loss_type == "dapo":
            loss = per_token.sum() / totals["tokens"]
        else:
            per_answer = per_conversation(per_token, scored) / per_conversation(mask, scored).clamp(min=1)
            loss = per_answer.mean(dim=1).sum() / totals["answers"]
        clipped_share = (((ratio - clipped).abs() > 0).float() * mask).sum()
        return loss, {"loss": loss.detach() * totals["answers"], "kl": (kl * mask).detach().sum(),
                      "clipped": clipped_share.detach(), "tokens": mask.sum().detach()}

    def report(self, sums: dict[str, torch.Tensor], window: Window) -> dict:
        info = window.info
        metrics = {"loss": float(sums["loss"] / window.totals["answers"]), "reward": info["reward"],
                   "reward_spread_in_groups": info["spread"],
                   "kl": float(sums["kl"] / sums["tokens"].clamp(min=1)),
                   "clip_fraction": float(sums["clipped"] / sums["tokens"].clamp(min=1)),
                   "generation_share": info["generation_s"] / max(time.time() - info["started"], 1e-9),
                   "answers_judged_per_s": info["answers"] / max(info["generation_s"], 1e-9),
                   "judge_failures": self.failed_judgements}
        metrics.update({f"reward_{k}": v for k, v in info["terms"].items()})
        return metrics

    def memory_extras(self, model_config, positions: int) -> dict[str, float]:
        """GiB beyond one forward and backward of a prompt batch (`positions`: its rows with their target clips,
        as the dry run collates them): the group's other G - 1 answers in the training forward, the KV cache of
        generating the group (bf16, each answer up to objective.max_new_tokens), and the reference's forward when
        the KL term is on."""
        from higgs_train.model.memory import GIB, activation_bytes

        group = self.objective.samples_per_prompt
        per_row = positions / max(self.trainer.batch_size, 1)
        rows = self.trainer.batch_size * group
        logits_per_position = model_config.num_codebooks * model_config.codebook_size * 4
        activations = activation_bytes(self.trainer.precision, self.gradient_checkpointing, model_config, positions)
        extras = {"the group's other answers": (group - 1) * (activations + positions * logits_per_position * 2) / GIB}
        cache = rows * (per_row + self.objective.max_new_tokens) * model_config.num_hidden_layers * 2 * \
            model_config.num_key_value_heads * model_config.head_dim * 2
        extras["generation KV cache"] = cache / GIB
        if self.objective.kl_beta > 0:
            extras["reference forward"] = rows * per_row * logits_per_position / GIB
        return extras
