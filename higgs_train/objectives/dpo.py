"""`objective=dpo`: direct preference optimisation on pairs of answers to one prompt (`data.pairs`).

For each pair the policy and the reference give the summed log-probability of the chosen and of the rejected answer
(over every codebook and supervised target, the stop target included where the answer stopped: the one mask of
`model/loss.py`), and the loss is -log sigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r))), as in NeMo's Koel-TTS
preference code; `objective.length_normalized` divides each log-probability by its number of targets first, and
`objective.sft_weight` adds the chosen answer's cross-entropy (RPO). The reference is the policy with its adapters
switched off (`objective.reference=live`, no second copy in memory), or the initial model's log-probabilities,
computed once at set-up and stored beside the pairs (`precomputed`: full fine-tuning and ZeRO-3).

Logged per step: the loss, the reward margin (beta times the log-ratio difference), the chosen and rejected rewards
and log-probabilities, and the preference accuracy (share of pairs whose margin is positive).

Where this differs from TRL's DPOTrainer (trl/trainer/dpo_trainer.py, its "sft" loss term, the former `rpo_alpha`,
and its "sigmoid_norm" loss), on purpose:
- the SFT term (`chosen_sft_loss`) is each chosen answer's mean cross-entropy per target, then the mean over pairs:
  every pair weighs the same whatever its length. TRL's is one mean over all chosen tokens of the batch, so a long
  answer weighs more. The two agree when the chosen answers have equal lengths.
- with `length_normalized=true`, the logged rewards, margin and accuracy come from the normalised log-ratios (the
  ones the loss sees: the accuracy is the share of pairs the loss ranks right). TRL logs them from the summed
  log-ratios whatever the loss. Without length normalisation both log the same numbers.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from higgs_train.config.groups import ModelConfig
from higgs_train.config.objectives import DPOConfig
from higgs_train.data.collator import ConversationCollator
from higgs_train.data.loader import TrainingData
from higgs_train.data.pair_table import PairCollator, PairDataset, fitting_pairs, open_pairs
from higgs_train.data.sampler import FixedSizeBatchSampler
from higgs_train.data.source import DataPlan
from higgs_train.data.task_data import held_out
from higgs_train.model.loading import checkpoint_identity
from higgs_train.model.loss import MODEL_INPUTS, sequence_logprobs, target_counts
from higgs_train.objectives.window import Window
from higgs_train.runtime import atomic
from higgs_train.runtime.cache import cache_root
from higgs_train.runtime.logs import logger
from higgs_train.runtime.progress import progress_bar


class DirectPreference:
    loss_label = "DPO, per pair"
    def __init__(self, config: DPOConfig, accelerator, model, model_config, model_path: str,
                 model_settings: ModelConfig, precision: str):
        """`model_path`: the checkpoint `model_settings.name_or_path` names, resolved at the run's start; with the
        weights' dtype, quantization and `precision` it names the precomputed reference."""
        self.accelerator, self.model, self.model_config = accelerator, model, model_config
        self.objective, self.model_path, self.model_settings, self.precision = config, model_path, model_settings, \
            precision

    # ---- data ---------------------------------------------------------------------------------------------------
    def training_data(self, plan: DataPlan, processor) -> TrainingData:
        collator = ConversationCollator(processor.tokenizer, self.model_config)
        table = open_pairs(plan.source.path, processor.audio_tokenizer, plan.data)
        rows, skipped = fitting_pairs(table, collator, plan.data)
        pairs = PairDataset(table, rows)
        if self.objective.reference == "precomputed":
            pairs.reference = self._reference(pairs, collator, plan.trainer.batch_size)
        validation_mask = held_out(len(pairs), plan.val_size, plan.seed, "pairs")
        training, validation = pairs.subset(np.flatnonzero(~validation_mask)), pairs.subset(
            np.flatnonzero(validation_mask))
        sampler = FixedSizeBatchSampler(len(training), plan.trainer.batch_size, plan.seed)
        loader = torch.utils.data.DataLoader(training, batch_sampler=sampler, collate_fn=PairCollator(collator),
                                             num_workers=plan.trainer.num_workers,
                                             generator=torch.Generator().manual_seed(plan.seed))
        return TrainingData(collator, table, training.chosen(), validation.chosen(), skipped, loader, sampler,
                            {"pairs": len(table), "from": str(table.folder)})

    def _reference_file(self, pairs: PairDataset) -> Path:
        """Where the initial model's log-probabilities of these pairs are kept: beside the pairs (or, read-only,
        in the user cache), named after what decides them: the model's files, how it computes, and which pairs
        (when some were left out for their length)."""
        table_folder = pairs.table.folder
        identity = [checkpoint_identity(self.model_path), self.model_settings.weights_dtype,
                    self.model_settings.quantization, self.precision]
        if len(pairs) < len(pairs.table):
            identity.append(hashlib.sha256(pairs.rows.astype(np.int64).tobytes()).hexdigest())
        key = hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:16]
        folder = table_folder if os.access(table_folder, os.W_OK) else cache_root() / "pair-references" / \
            hashlib.sha256(str(table_folder).encode()).hexdigest()[:16]
        return folder / f"reference-{key}.npy"

    @torch.no_grad()
    def _reference(self, pairs: PairDataset, collator, size: int) -> np.ndarray:
        """(pairs, 2, 2): for the chosen and the rejected answer, the initial model's summed log-probability and its
        number of targets. Computed with the policy before its first step (every process, in step), kept on disk."""
        path = self._reference_file(pairs)
        if path.is_file():
            return np.load(path)
        model, device = self.model, next(self.model.parameters()).device
        collate = PairCollator(collator)
        was_training = model.training
        model.eval()
        found = []
        with _gathered(self.accelerator, model), _autocast(self.accelerator):
            for start in progress_bar(range(0, len(pairs), size), desc="reference log-probabilities", unit="batch"):
                batch = collate([pairs[i] for i in range(start, min(start + size, len(pairs)))])
                sums, counts = sequence_logprobs(model, {k: v.to(device) for k, v in batch.items()},
                                                 self.model_config)
                found.append(torch.stack([sums.sum(-1), counts.sum(-1)], dim=-1).reshape(-1, 2, 2).cpu())
        model.train(was_training)
        values = torch.cat(found).numpy().astype(np.float64)
        if self.accelerator is None or self.accelerator.is_main_process:
            with atomic.atomic_output(path, unique=True) as partial:
                with open(partial, "wb") as handle:
                    np.save(handle, values)
            logger.info(f"reference log-probabilities of {len(pairs)} pairs kept in {path}")
        return values

    # ---- the step -----------------------------------------------------------------------------------------------
    def prepare(self, model, window: list[dict]) -> Window:
        pairs = sum(b["input_ids"].shape[0] // 2 for b in window)
        frames = sum(int(target_counts(b)[0][0]) for b in window)
        totals = self.accelerator.reduce(torch.tensor([pairs, frames], device=self.accelerator.device), "sum")
        return Window(window, {"pairs": totals[0].clamp(min=1)}, frames=int(totals[1]))

    def _per_sequence(self, sums: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        total = sums.sum(-1)
        return total / counts.sum(-1).clamp(min=1) if self.objective.length_normalized else total

    def _live_reference(self, model, batch: dict) -> torch.Tensor:
        """(2B,) the reference's log-probabilities: the same model with its adapters switched off."""
        unwrapped = self.accelerator.unwrap_model(model)
        with torch.no_grad(), unwrapped.disable_adapter(), self.accelerator.autocast():
            sums, counts = sequence_logprobs(unwrapped, batch, self.model_config)
        return self._per_sequence(sums, counts)

    def loss(self, model, batch: dict, window: Window) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        sums, counts = sequence_logprobs(model, {k: v for k, v in batch.items() if k != "reference_logps"},
                                         self.model_config)
        policy = self._per_sequence(sums, counts)
        if "reference_logps" in batch:  # (B, 2 answers, [sum, count])
            stored = batch["reference_logps"].to(policy.dtype)
            reference = (stored[..., 0] / stored[..., 1].clamp(min=1) if self.objective.length_normalized
                         else stored[..., 0]).reshape(-1)
        else:
            reference = self._live_reference(model, {k: v for k, v in batch.items() if k in (*MODEL_INPUTS,
                                                                                             "audio_labels")})
        chosen, rejected = policy[0::2] - reference[0::2], policy[1::2] - reference[1::2]
        margin = self.objective.beta * (chosen - rejected)
        per_pair = -F.logsigmoid(margin)
        sft = -sums[0::2].sum(-1) / counts[0::2].sum(-1).clamp(min=1)  # the chosen answer's cross-entropy
        loss = (per_pair + self.objective.sft_weight * sft).sum() / window.totals["pairs"]
        detached = lambda value: value.detach().sum()  # noqa: E731
        return loss, {"loss": detached(per_pair + self.objective.sft_weight * sft), "margin": detached(margin),
                      "chosen_reward": detached(self.objective.beta * chosen),
                      "rejected_reward": detached(self.objective.beta * rejected),
                      "accuracy": detached((margin > 0).float()), "chosen_logp": detached(policy[0::2]),
                      "rejected_logp": detached(policy[1::2]), "sft": detached(sft)}

    def report(self, sums: dict[str, torch.Tensor], window: Window) -> dict:
        pairs = window.totals["pairs"]
        mean = {key: float(value / pairs) for key, value in sums.items()}
        return {"loss": mean["loss"], "reward_margin": mean["margin"], "chosen_reward": mean["chosen_reward"],
                "rejected_reward": mean["rejected_reward"], "preference_accuracy": mean["accuracy"],
                "chosen_logp": mean["chosen_logp"], "rejected_logp": mean["rejected_logp"],
                "chosen_sft_loss": mean["sft"]}

    def memory_extras(self, model_config, positions: int) -> dict[str, float]:
        """GiB beyond the policy's forward and backward: the live reference's forward (no gradient), whose fp32
        logits at the supervised positions and one layer's activations are alive at a time."""
        if self.objective.reference != "live":
            return {}
        logits = positions * model_config.num_codebooks * model_config.codebook_size * 4
        layer = positions * model_config.hidden_size * 2 * 17
        return {"reference forward": (logits + layer) / 1024**3}


def _gathered(accelerator, model):
    """ZeRO-3 shards the weights at load: gather them for the reference's forward passes before training."""
    plugin = getattr(getattr(accelerator, "state", None), "deepspeed_plugin", None)
    if plugin is None or plugin.zero_stage != 3:
        return contextlib.nullcontext()
    import deepspeed

    return deepspeed.zero.GatheredParameters(list(model.parameters()))


def _autocast(accelerator):
    return accelerator.autocast() if accelerator is not None else contextlib.nullcontext()
