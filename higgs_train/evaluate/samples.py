"""Listening to the model: greedy/sampled generation for a few prompts, decoded to 24 kHz wav files and measured."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import torch
from transformers import GenerationConfig

from higgs_train.data.audio import TARGET_SAMPLE_RATE
from higgs_train.data.delay_pattern import codes_from_generation
from higgs_train.data.tasks.layout import last_user_text, target_audio
from higgs_train.evaluate.judge_answer import AnswerJudge, decode, prompt_clip
from higgs_train.evaluate.judges import Judges
from higgs_train.evaluate.sample_files import sample_file_name, write_wav
from higgs_train.evaluate.sample_metrics import expected_frames_from_text, trailing_silence_share
from higgs_train.runtime.progress import progress_bar

# A repeat count no window reaches: how repetition-aware sampling is switched off (a None would be replaced by the
# checkpoint's own generation_config default, which samples).
RAS_OFF = 1 << 30


def generation_config(model_config, eval_cfg) -> GenerationConfig:
    """Greedy decoding is deterministic: repetition-aware sampling (which replaces a repeated code by a sampled one)
    only runs when sampling is on and `eval.ras_win_len` is set."""
    use_ras = eval_cfg.do_sample and eval_cfg.ras_win_len is not None
    return GenerationConfig(
        max_new_tokens=eval_cfg.max_new_tokens,
        do_sample=eval_cfg.do_sample,
        temperature=eval_cfg.temperature if eval_cfg.do_sample else None,
        top_k=None,
        top_p=None,
        ras_win_len=eval_cfg.ras_win_len if use_ras else 1,
        ras_win_max_num_repeat=eval_cfg.ras_win_max_num_repeat if use_ras else RAS_OFF,
        eos_token_id=model_config.eos_token_id,
        pad_token_id=model_config.pad_token_id,
        bos_token_id=model_config.bos_token_id,
    )


@torch.no_grad()
def generate_codes(model, collator, conversations: list[dict], eval_cfg) -> list[tuple[torch.Tensor, bool]]:
    """(codes (K, T), stopped) for each conversation's target turn, generated from its prompt in one batch."""
    config = model.config
    device = next(model.parameters()).device
    prompts = {k: v.to(device) for k, v in collator.prompts(conversations).items()}
    prompt_frames = prompts["audio_input_ids"].shape[1] if "audio_input_ids" in prompts else 0
    was_training = model.training
    model.eval()
    audio = model.generate(**prompts, generation_config=generation_config(config, eval_cfg))
    model.train(was_training)
    return [
        codes_from_generation(audio[b, prompt_frames:].cpu(), config.audio_stream_bos_id, config.audio_stream_eos_id)
        for b in range(audio.shape[0])
    ]


def generate_in_batches(model, collator, conversations: list[dict], eval_cfg, token_limits: list[int] | None = None):
    """(conversation, codes, stopped) for each conversation, generated `eval.batch_size` prompts at a time. Each
    batch samples from its own seed (`eval.seed` + its first index), in a forked RNG, so a list gives the same
    samples whatever ran before and a training run's random stream is left as it was. `token_limits`: per
    conversation, a lower token limit than `eval.max_new_tokens` (a batch runs to the highest of its own)."""
    device = next(model.parameters()).device
    for start in range(0, len(conversations), eval_cfg.batch_size):
        chunk = conversations[start:start + eval_cfg.batch_size]
        settings = eval_cfg
        if token_limits is not None:
            limit = min(eval_cfg.max_new_tokens, max(token_limits[start:start + eval_cfg.batch_size]))
            settings = copy.copy(eval_cfg)
            settings.max_new_tokens = limit
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(eval_cfg.seed + start)
            generated = generate_codes(model, collator, chunk, settings)
        for conversation, (codes, stopped) in zip(chunk, generated):
            yield conversation, codes, stopped


def _duration_caps(conversations: list[dict], frame_rate: float, eval_cfg) -> list[int] | None:
    """Per conversation, the most frames `eval.duration_cap` allows: that many times the text's expected length."""
    factor = eval_cfg.duration_cap
    if not factor:
        return None
    return [math.ceil(factor * expected_frames_from_text(last_user_text(c["messages"]), frame_rate,
                                                         eval_cfg.chars_per_second)) for c in conversations]


def _trimmed(codes: torch.Tensor, waveform: np.ndarray, samples_per_frame: int, silence_db: float):
    """The sample without its trailing silence (one silent frame kept as a tail): (codes, waveform, frames cut)."""
    frames = len(waveform) // samples_per_frame
    if frames == 0:
        return codes, waveform, 0
    silent = trailing_silence_share(waveform, samples_per_frame, silence_db)
    cut = max(0, round(silent * frames) - 1)
    if cut == 0:
        return codes, waveform, 0
    keep = frames - cut
    return codes[:, :keep], waveform[: keep * samples_per_frame], cut


@torch.no_grad()
def write_samples(model, audio_tokenizer, collator, conversations: list[dict], eval_cfg, out_dir: Path,
                  judges: Judges | None = None) -> tuple[list[dict], list[np.ndarray]]:
    """Generate (`eval.batch_size` prompts at a time), decode and write `<out_dir>/<id>.wav` for each conversation;
    returns one record per sample (every metric of the registry it can be measured by) and the waveforms.
    Similarity is to the prompt's reference clip (Seed-TTS-eval's rule), else to the target clip."""
    judge = AnswerJudge(audio_tokenizer, eval_cfg, judges or Judges())
    out_dir.mkdir(parents=True, exist_ok=True)
    frame_rate = audio_tokenizer.config.frame_rate
    records, waveforms, written = [], [], set()
    caps = _duration_caps(conversations, frame_rate, eval_cfg)
    limits = [cap + collator.num_codebooks + 1 for cap in caps] if caps else None
    generated = progress_bar(generate_in_batches(model, collator, conversations, eval_cfg, limits),
                             total=len(conversations), desc="generating samples", unit="sample", leave=False,
                             position=0)  # as validation's bar
    for index, (conversation, codes, stopped) in enumerate(generated):
        acted = {}
        if caps and codes.shape[1] >= caps[index]:  # the hard cap: never longer than the text allows
            codes, stopped, acted["capped_s"] = codes[:, :caps[index]], False, caps[index] / frame_rate
        waveform = decode(audio_tokenizer, codes)
        if eval_cfg.trim_silence:
            codes, waveform, trimmed = _trimmed(codes, waveform, round(TARGET_SAMPLE_RATE / frame_rate),
                                                eval_cfg.silence_db)
            if trimmed:
                acted["trimmed_s"] = trimmed / frame_rate
        name = sample_file_name(conversation["id"])
        if name.casefold() in written:  # ids that only differ in unsafe characters: each still gets its own wav
            name = f"{name[:-4]}-{index}.wav"
        written.add(name.casefold())
        path = out_dir / name
        write_wav(path, waveform, TARGET_SAMPLE_RATE)
        text = last_user_text(conversation["messages"])
        target = target_audio(conversation["messages"]) or {}
        voice = prompt_clip(conversation) or (target or None)  # the clip to listen to beside it
        record = {"id": conversation["id"], "path": str(path), "text": text,
                  **judge(conversation, codes, stopped, waveform),
                  "seconds": codes.shape[1] / frame_rate, **acted}
        heard = target.get("path") or conversation.get("target_path") or (voice or {}).get("path")
        if heard:  # the clip to listen to beside the sample: its target, else the prompt's reference
            record["target_audio"] = heard
        records.append(record)
        waveforms.append(waveform)
    return records, waveforms
