"""Judging one generated answer, the one way periodic evaluation, `higgs-eval`, GRPO's rewards and `higgs-prep pairs`
all do it: the length it should have, the voice it should have, its audio (decoded only when a metric listens) and
the metric registry's record of it.

The expected length is the target clip's where the conversation has one (its codes, else its audio file: a test
list's ground truth), else the transcript's at `chars_per_second`. (GRPO and pairs used to read only the codes and
fell back to the transcript for a target that had a file but no codes yet; evaluation read the file.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from higgs_train.data.audio import audio_length, load_audio
from higgs_train.data.tasks.layout import last_user_text, target_audio
from higgs_train.evaluate.judges import Judges
from higgs_train.evaluate.metrics import Sample, measure
from higgs_train.evaluate.sample_metrics import expected_frames_from_text


def expected_frames(conversation: dict, frame_rate: float, chars_per_second: float) -> float:
    """The target clip's length in frames (its codes, else its file), else the transcript's read aloud."""
    target = target_audio(conversation["messages"]) or {}
    if "codes" in target:
        return float(target["codes"].shape[1])
    path = target.get("path") or conversation.get("target_path")
    if path:
        rate, samples = audio_length(path)
        return samples / rate * frame_rate
    return expected_frames_from_text(last_user_text(conversation["messages"]), frame_rate, chars_per_second)


def prompt_clip(conversation: dict) -> dict | None:
    """The first clip of the prompt (a voice-clone reference or a scene clip), None when it has none."""
    prompt = conversation["messages"][:-1] if target_audio(conversation["messages"]) else conversation["messages"]
    return next((i for m in prompt for i in m["content"] if i["type"] == "audio"), None)


def reference_voice(conversation: dict) -> np.ndarray | None:
    """The voice a sample is compared with (24 kHz): the prompt's reference clip, Seed-TTS-eval's rule, else the
    target clip; None when neither has audio to read."""
    item = prompt_clip(conversation) or target_audio(conversation["messages"])
    if item is None:
        return None
    if "path" in item:
        return load_audio(item["path"])
    if "array" in item:
        return load_audio(np.asarray(item["array"], dtype=np.float32), source_rate=item["sampling_rate"])
    return None


@torch.no_grad()
def decode(audio_tokenizer, codes: torch.Tensor) -> np.ndarray:
    """The 24 kHz waveform of (K, T) codes; empty for an answer with no frames."""
    if codes.shape[1] == 0:
        return np.zeros(0, dtype=np.float32)
    device = next(audio_tokenizer.parameters()).device
    return audio_tokenizer.decode(codes[None].to(device)).audio_values[0, 0].float().cpu().numpy()


@dataclass
class AnswerJudge:
    """Judges answers to conversations. `settings` reads as `eval.*` does (`chars_per_second`, `silence_db`,
    `language`); `metrics`: the registry's names to measure (None: every one)."""

    audio_tokenizer: object
    settings: object
    judges: Judges
    metrics: tuple[str, ...] | None = None

    def __call__(self, conversation: dict, codes: torch.Tensor, stopped: bool,
                 waveform: np.ndarray | None = None) -> dict:
        """The registry's record of one answer (`waveform`: its audio when the caller decoded it already)."""
        frame_rate = self.audio_tokenizer.config.frame_rate
        sample = Sample(codes=codes, stopped=stopped,
                        waveform=waveform if waveform is not None else lambda: decode(self.audio_tokenizer, codes),
                        text=last_user_text(conversation["messages"]),
                        expected_frames=expected_frames(conversation, frame_rate, self.settings.chars_per_second),
                        frame_rate=frame_rate, silence_db=self.settings.silence_db,
                        target_codes=(target_audio(conversation["messages"]) or {}).get("codes"),
                        reference=reference_voice(conversation) if self.judges.speaker is not None else None,
                        language=getattr(self.settings, "language", "en"))
        return measure(sample, self.judges, self.metrics)
