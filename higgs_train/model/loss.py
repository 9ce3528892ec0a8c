"""The audio head's log-probabilities of its targets, computed only where a target exists, and the two reductions
every objective builds on: summed per codebook over a batch (the supervised loss) and summed per conversation and
codebook (the sequence log-probabilities of preference objectives). Both read one mask, `next_token_audio_targets`,
so no objective can disagree with another about what a target is.

The audio head is projected only at positions whose next token is supervised (`logits_to_keep` mask), which on the
real model (8 x 1026 logits per position) saves most of the logits memory of a full forward.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

# The label value the loss skips: a position with no target. The collator writes it; the loss defines it.
IGNORE_INDEX = -100
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


@dataclass
class TargetLogProbs:
    """Per kept position: the log-probability of each codebook's target (0 where it has none), which conversation of
    the batch the position belongs to, and the targets themselves."""

    logprobs: torch.Tensor  # (N, K)
    targets: torch.Tensor  # (N, K), IGNORE_INDEX where no target
    conversation: torch.Tensor  # (N,)
    num_conversations: int
    logits: torch.Tensor  # (N, K, C)
    hidden: torch.Tensor | None = None  # (B, L, H) last hidden states, when the text head needs them

    @property
    def mask(self) -> torch.Tensor:
        return self.targets != IGNORE_INDEX


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


def conversation_ids(batch: dict) -> tuple[torch.Tensor, int]:
    """(B, L) index of the conversation each position belongs to, and how many there are: the row for padded
    batches; in a packed row (no attention mask, `position_ids` restarting at 0) each restart begins the next."""
    input_ids = batch["input_ids"]
    if "position_ids" in batch and "attention_mask" not in batch:
        starts = (batch["position_ids"] == 0).reshape(-1)
        return (starts.cumsum(0) - 1).reshape(input_ids.shape), int(starts.sum())
    rows = torch.arange(input_ids.shape[0], device=input_ids.device)
    return rows[:, None].expand(input_ids.shape), input_ids.shape[0]


def target_logprobs(model, batch: dict, config, text_targets: torch.Tensor | None = None) -> TargetLogProbs:
    """One forward pass, projected only where an audio target (or, with `text_targets`, a text target) follows."""
    targets = next_token_audio_targets(batch, config.audio_token_id, config.audio_delay_token_id)
    keep = (targets != IGNORE_INDEX).any(dim=-1)
    if text_targets is not None:
        keep = keep | (text_targets != IGNORE_INDEX)
    outputs = model(**{k: batch[k] for k in MODEL_INPUTS if k in batch}, logits_to_keep=keep,
                    output_hidden_states=text_targets is not None)
    kept_targets = targets[keep]  # (N, K)
    logits = outputs.logits.reshape(kept_targets.shape[0], config.num_codebooks, config.codebook_size)
    losses = F.cross_entropy(logits.float().transpose(1, 2), kept_targets, ignore_index=IGNORE_INDEX, reduction="none")
    conversation, count = conversation_ids(batch)
    return TargetLogProbs(logprobs=-losses, targets=kept_targets, conversation=conversation[keep],
                          num_conversations=count, logits=logits,
                          hidden=outputs.hidden_states[-1] if text_targets is not None else None)


def per_conversation(values: torch.Tensor, scored: TargetLogProbs) -> torch.Tensor:
    """(N, K) values at kept positions -> (conversations, K) sums."""
    out = values.new_zeros((scored.num_conversations, values.shape[1]))
    return out.index_add_(0, scored.conversation, values)


def sequence_logprobs(model, batch: dict, config) -> tuple[torch.Tensor, torch.Tensor]:
    """Per conversation and codebook: the summed log-probability of its supervised audio targets (B, K), and how many
    targets were summed (B, K). Only supervised target positions count: never the prompt, reference clips,
    padding, another conversation of a packed row, or the delay-pattern filler after a codebook's stream end."""
    scored = target_logprobs(model, batch, config)
    return per_conversation(scored.logprobs, scored), per_conversation(scored.mask.float(), scored)


def audio_loss_terms(model, batch: dict, config, text_head=None, with_accuracy: bool = False) -> LossTerms:
    """Loss sums and counts of one micro-batch; `text_head` (the model's `text_lm_head`) adds the text targets and
    `with_accuracy` the top-1 hits per codebook."""
    text_targets = next_token_text_targets(batch) if text_head is not None else None
    scored = target_logprobs(model, batch, config, text_targets)
    terms = LossTerms(sums=-scored.logprobs.sum(dim=0), counts=scored.mask.sum(dim=0))
    if with_accuracy:
        terms.correct = (scored.logits.argmax(dim=-1) == scored.targets).sum(dim=0)  # -100 never equals an argmax
    if text_head is not None:
        wanted = text_targets != IGNORE_INDEX
        text_logits = text_head(scored.hidden[wanted])
        terms.text_sum = F.cross_entropy(text_logits.float(), text_targets[wanted], reduction="sum")
        terms.text_count = wanted.sum()
    return terms
