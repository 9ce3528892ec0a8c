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
    """Summed cross-entropy and target count per codebook (and of the text head, when on); add across micro-batches
    and processes first, divide last, so every supervised token weighs the same whatever batch it came in."""

    sums: torch.Tensor  # (K,)
    counts: torch.Tensor  # (K,)
    text_sum: torch.Tensor | None = None
    text_count: torch.Tensor | None = None
    correct: torch.Tensor | None = None  # (K,) top-1 hits, when asked for (validation)


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


def next_token_text_targets(batch: dict) -> torch.Tensor:
    """(B, L): the text token each position must predict next, -100 where none."""
    targets = torch.full_like(batch["labels"], IGNORE_INDEX)
    targets[:, :-1] = batch["labels"][:, 1:]
    return targets


def target_counts(batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Supervised audio targets per codebook (K,) and supervised text tokens, known before any forward pass."""
    audio = (batch["audio_labels"] != IGNORE_INDEX).sum(dim=(0, 1))
    return audio, (batch["labels"] != IGNORE_INDEX).sum()


def audio_loss_terms(model, batch: dict, config, text_head=None, with_accuracy: bool = False) -> LossTerms:
    """Loss sums and counts of one micro-batch; `text_head` (the model's `text_lm_head`) adds the text targets and
    `with_accuracy` the top-1 hits per codebook."""
    targets = next_token_audio_targets(batch, config.audio_token_id, config.audio_delay_token_id)
    keep = (targets != IGNORE_INDEX).any(dim=-1)
    text_targets = next_token_text_targets(batch) if text_head is not None else None
    if text_targets is not None:
        keep = keep | (text_targets != IGNORE_INDEX)
    outputs = model(**{k: batch[k] for k in MODEL_INPUTS if k in batch}, logits_to_keep=keep,
                    output_hidden_states=text_head is not None)
    kept_targets = targets[keep]  # (N, K)
    logits = outputs.logits.reshape(kept_targets.shape[0], config.num_codebooks, config.codebook_size)
    losses = F.cross_entropy(logits.float().transpose(1, 2), kept_targets, ignore_index=IGNORE_INDEX, reduction="none")
    terms = LossTerms(sums=losses.sum(dim=0), counts=(kept_targets != IGNORE_INDEX).sum(dim=0))
    if with_accuracy:
        terms.correct = (logits.argmax(dim=-1) == kept_targets).sum(dim=0)  # -100 never equals an argmax
    if text_head is not None:
        wanted = text_targets != IGNORE_INDEX
        text_logits = text_head(outputs.hidden_states[-1][wanted])
        terms.text_sum = F.cross_entropy(text_logits.float(), text_targets[wanted], reduction="sum")
        terms.text_count = wanted.sum()
    return terms
