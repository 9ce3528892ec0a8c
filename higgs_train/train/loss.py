"""Audio loss per codebook, computed only where a target exists.

The audio head is projected only at positions whose next token is supervised (`logits_to_keep` mask), which on the
real model (8 x 1026 logits per position) saves most of the logits memory of a full forward.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from higgs_train.data.delay_pattern import IGNORE_INDEX

MODEL_INPUTS = ("input_ids", "attention_mask", "position_ids", "audio_input_ids", "audio_input_ids_mask")


@dataclass
class LossTerms:
    """Summed cross-entropy and target count per codebook; divide to get means, add across micro-batches first."""

    sums: torch.Tensor  # (K,)
    counts: torch.Tensor  # (K,)


def next_token_audio_targets(batch: dict, audio_token_id: int, delay_token_id: int) -> torch.Tensor:
    """(B, L, K): the audio target each position must predict for the following position, -100 where none."""
    input_ids = batch["input_ids"]
    positions = (input_ids == audio_token_id) | (input_ids == delay_token_id)
    on_positions = torch.full((*input_ids.shape, batch["audio_labels"].shape[-1]), IGNORE_INDEX,
                              dtype=torch.long, device=input_ids.device)
    on_positions[positions] = batch["audio_labels"][batch["audio_input_ids_mask"]]
    targets = torch.full_like(on_positions, IGNORE_INDEX)
    targets[:, :-1] = on_positions[:, 1:]
    return targets


def audio_loss_terms(model, batch: dict, config) -> LossTerms:
    targets = next_token_audio_targets(batch, config.audio_token_id, config.audio_delay_token_id)
    keep = (targets != IGNORE_INDEX).any(dim=-1)
    outputs = model(**{k: batch[k] for k in MODEL_INPUTS if k in batch}, logits_to_keep=keep)
    kept_targets = targets[keep]  # (N, K)
    logits = outputs.logits.reshape(kept_targets.shape[0], config.num_codebooks, config.codebook_size)
    losses = F.cross_entropy(logits.float().transpose(1, 2), kept_targets, ignore_index=IGNORE_INDEX, reduction="none")
    return LossTerms(sums=losses.sum(dim=0), counts=(kept_targets != IGNORE_INDEX).sum(dim=0))
