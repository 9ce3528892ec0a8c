"""Conversations -> the tensors `HiggsAudioV2ForConditionalGeneration` takes, with labels that teach stopping.

Each turn is rendered and tokenized on its own, so every token knows its turn; each `<|AUDIO_OUT|>` then expands into
the delay-pattern positions of its clip (HIGGS_FORMAT.md). Only supervised turns get labels: a target clip's codes plus
one stream-EOS per codebook. Context audio (voice-clone references, scene clips) is input only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from higgs_train.data.delay_pattern import delayed_audio_ids, delayed_audio_labels, delayed_length
from higgs_train.model.loss import IGNORE_INDEX

AUDIO_BLOCK = "<|audio_out_bos|><|AUDIO_OUT|><|audio_eos|>"
GENERATION_PROMPT = "<|start_header_id|>assistant<|end_header_id|>\n\n<|audio_out_bos|>"


@dataclass
class Turn:
    """One rendered turn: its text (audio as `<|AUDIO_OUT|>` placeholders), the clips in placeholder order, whether
    it is a training target, and for each clip whether it ends in stream-EOS (a generated sample that ran to the
    token limit does not: it is scored on the codes it made, with no stop target)."""

    text: str
    clips: list[torch.Tensor]
    supervised: bool
    stops: list[bool] = field(default_factory=list)


@dataclass
class EncodedConversation:
    input_ids: list[int] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    audio_ids: list[torch.Tensor] = field(default_factory=list)  # (frames, K) per clip
    audio_labels: list[torch.Tensor] = field(default_factory=list)

    @property
    def num_positions(self) -> int:
        return len(self.input_ids)


def _texts(message: dict) -> str:
    return "".join(item["text"].strip() for item in message["content"] if item["type"] == "text")


def _clips(message: dict) -> list[torch.Tensor]:
    return [item["codes"] for item in message["content"] if item["type"] == "audio"]


def _stops(message: dict) -> list[bool]:
    return [item.get("stopped", True) for item in message["content"] if item["type"] == "audio"]


def _scene_block(items: list[dict]) -> str:
    """The scene layout of the checkpoint's chat template, item by item."""
    parts = ["\n\n<|scene_desc_start|>\n"]
    for index, item in enumerate(items):
        is_last = index == len(items) - 1
        if item["type"] == "text":
            parts.append(item["text"].strip())
            if index == 0 and not is_last:
                parts.append("\n\n")
            elif index > 0 and not is_last and items[index + 1]["type"] != "audio":
                parts.append("\n")
        else:
            parts.append(" " + AUDIO_BLOCK + ("" if is_last else "\n"))
    parts.append("\n<|scene_desc_end|>")
    return "".join(parts)


def render_turns(messages: list[dict], bos_token: str) -> list[Turn]:
    """Render a conversation as the checkpoint's chat template does, one `Turn` per turn (the scene joins the system
    turn). A message is a target when it says `"supervised": true`; by default the last assistant message is."""
    last_assistant = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)

    def is_target(index: int) -> bool:
        return bool(messages[index].get("supervised", index == last_assistant))

    system = bos_token + "<|start_header_id|>system<|end_header_id|>\n\n" + _texts(messages[0])
    system_clips: list[torch.Tensor] = []
    start = 1
    if len(messages) > 1 and messages[1]["role"] == "scene":
        system += _scene_block(messages[1]["content"])
        system_clips = _clips(messages[1])
        start = 2
    turns = [Turn(system + "<|eot_id|>", system_clips, supervised=False)]
    for index in range(start, len(messages)):
        message = messages[index]
        header = f"<|start_header_id|>{message['role']}<|end_header_id|>\n\n"
        if message["role"] == "assistant":
            clips = _clips(message)
            turns.append(Turn(header + AUDIO_BLOCK * len(clips) + "<|eot_id|>", clips, is_target(index),
                              _stops(message)))
        else:
            turns.append(Turn(header + _texts(message) + "<|eot_id|>", [], supervised=False))
    return turns


class ConversationCollator:
    """Builds training batches (right-padded rows, or one packed row with `packing=True`) and generation prompts
    (left padding) from conversations whose audio items carry `codes`, a (K, T) LongTensor from the audio tokenizer."""

    def __init__(self, tokenizer, model_config, packing: bool = False):
        self.tokenizer = tokenizer
        self.packing = packing
        self.num_codebooks = model_config.num_codebooks
        self.audio_token_id = model_config.audio_token_id
        self.delay_token_id = model_config.audio_delay_token_id
        self.stream_bos = model_config.audio_stream_bos_id
        self.stream_eos = model_config.audio_stream_eos_id
        self.pad_token_id = tokenizer.pad_token_id

    def _tokenize(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def _append(self, encoded: EncodedConversation, turn: Turn) -> None:
        ids = self._tokenize(turn.text)
        placeholders = [i for i, token in enumerate(ids) if token == self.audio_token_id]
        if len(placeholders) != len(turn.clips):
            raise ValueError(f"turn has {len(placeholders)} audio placeholders but {len(turn.clips)} clips")
        # Text targets of a supervised turn: what follows its last clip (<|audio_eos|><|eot_id|>).
        text_target_from = placeholders[-1] + 1 if (turn.supervised and placeholders) else len(ids)
        for position, token in enumerate(ids):
            if token != self.audio_token_id:
                encoded.input_ids.append(token)
                encoded.labels.append(token if position >= text_target_from else IGNORE_INDEX)
                continue
            codes = turn.clips[placeholders.index(position)]
            length, delays = delayed_length(codes.shape[1], self.num_codebooks), self.num_codebooks - 1
            encoded.input_ids += [self.audio_token_id] * (length - delays) + [self.delay_token_id] * delays
            encoded.labels += [IGNORE_INDEX] * length
            encoded.audio_ids.append(delayed_audio_ids(codes, self.stream_bos, self.stream_eos).T)
            if turn.supervised:
                stops = turn.stops[placeholders.index(position)] if turn.stops else True
                labels = delayed_audio_labels(codes, self.stream_eos, stops)
            else:
                labels = torch.full((self.num_codebooks, length), IGNORE_INDEX)
            encoded.audio_labels.append(labels.T)

    def encode(self, messages: list[dict], add_generation_prompt: bool = False) -> EncodedConversation:
        encoded = EncodedConversation()
        for turn in render_turns(messages, self.tokenizer.bos_token):
            self._append(encoded, turn)
        if add_generation_prompt:
            self._append(encoded, Turn(GENERATION_PROMPT, [], supervised=False))
        return encoded

    def count_positions(self, messages: list[dict], known: dict[str, int] | None = None) -> int:
        """`encode(messages).num_positions` without building any tensor: each clip's placeholder becomes its
        `delayed_length` positions. `known`: token counts of turn texts met before, filled in as
        it goes (measuring many rows meets most system and assistant turns again)."""
        known = {} if known is None else known
        total = 0
        for turn in render_turns(messages, self.tokenizer.bos_token):
            if turn.text not in known:
                known[turn.text] = len(self._tokenize(turn.text))
            clips = sum(delayed_length(clip.shape[1], self.num_codebooks) - 1 for clip in turn.clips)
            total += known[turn.text] + clips  # each placeholder (1 token) becomes its clip's positions
        return total

    def pad(self, rows: list[EncodedConversation], padding_side: str = "right") -> dict[str, torch.Tensor]:
        batch_size = len(rows)
        length = max(row.num_positions for row in rows)
        frames = max(sum(len(a) for a in row.audio_ids) for row in rows)
        batch = {
            "input_ids": torch.full((batch_size, length), self.pad_token_id, dtype=torch.long),
            "attention_mask": torch.zeros((batch_size, length), dtype=torch.long),
            "labels": torch.full((batch_size, length), IGNORE_INDEX, dtype=torch.long),
            "audio_input_ids": torch.full((batch_size, frames, self.num_codebooks), self.stream_eos, dtype=torch.long),
            "audio_input_ids_mask": torch.zeros((batch_size, frames), dtype=torch.bool),
            "audio_labels": torch.full((batch_size, frames, self.num_codebooks), IGNORE_INDEX, dtype=torch.long),
        }
        for b, row in enumerate(rows):
            n = row.num_positions
            span = slice(length - n, length) if padding_side == "left" else slice(0, n)
            batch["input_ids"][b, span] = torch.tensor(row.input_ids)
            batch["attention_mask"][b, span] = 1
            batch["labels"][b, span] = torch.tensor(row.labels)
            if row.audio_ids:
                f = sum(len(a) for a in row.audio_ids)
                batch["audio_input_ids"][b, :f] = torch.cat(row.audio_ids)
                batch["audio_input_ids_mask"][b, :f] = True
                batch["audio_labels"][b, :f] = torch.cat(row.audio_labels)
        return batch

    def pack(self, rows: list[EncodedConversation]) -> dict[str, torch.Tensor]:
        """All rows back to back in ONE row, `position_ids` restarting at 0 for each conversation and no attention
        mask, so the model's packed-sequence masking keeps attention inside each conversation (SDPA, FlashAttention).
        No target crosses a boundary: each conversation starts with a text token, never an audio target."""
        packed = EncodedConversation()
        positions = []
        for row in rows:
            packed.input_ids += row.input_ids
            packed.labels += row.labels
            packed.audio_ids += row.audio_ids
            packed.audio_labels += row.audio_labels
            positions += range(row.num_positions)
        batch = self.pad([packed])
        batch.pop("attention_mask")
        batch["position_ids"] = torch.tensor([positions])
        return batch

    def __call__(self, conversations: list[dict]) -> dict[str, torch.Tensor]:
        rows = [self.encode(c["messages"]) for c in conversations]
        return self.pack(rows) if self.packing else self.pad(rows)

    def prompts(self, conversations: list[dict]) -> dict[str, torch.Tensor]:
        """Generation inputs: each conversation up to (excluding) its target turn, plus the generation prompt."""
        rows = [self.encode(prompt_messages(c["messages"]), add_generation_prompt=True) for c in conversations]
        batch = self.pad(rows, padding_side="left")
        for key in ("labels", "audio_labels"):
            batch.pop(key)
        if not batch["audio_input_ids_mask"].any():
            for key in ("audio_input_ids", "audio_input_ids_mask"):
                batch.pop(key)
        return batch


def prompt_messages(messages: list[dict]) -> list[dict]:
    """The conversation as inference sees it: without its closing assistant turn (the target), when it has one."""
    return messages[:-1] if messages[-1]["role"] == "assistant" else messages
