"""Listening to the model: greedy/sampled generation for a few prompts, decoded to 24 kHz wav files and measured."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from tqdm.auto import tqdm
from transformers import GenerationConfig

from higgs_train.data.audio import TARGET_SAMPLE_RATE
from higgs_train.data.delay_pattern import codes_from_generation
from higgs_train.data.tasks.layout import last_user_text, target_audio
from higgs_train.evaluate.sample_metrics import duration_ratio, expected_frames_from_text, silent_share

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


def generate_in_batches(model, collator, conversations: list[dict], eval_cfg):
    """(conversation, codes, stopped) for each conversation, generated `eval.batch_size` prompts at a time."""
    for start in range(0, len(conversations), eval_cfg.batch_size):
        chunk = conversations[start:start + eval_cfg.batch_size]
        for conversation, (codes, stopped) in zip(chunk, generate_codes(model, collator, chunk, eval_cfg)):
            yield conversation, codes, stopped


@torch.no_grad()
def write_samples(model, audio_tokenizer, collator, conversations: list[dict], eval_cfg, out_dir: Path,
                  show_progress: bool = True) -> tuple[list[dict], list[np.ndarray]]:
    """Generate (`eval.batch_size` prompts at a time), decode and write `<out_dir>/<id>.wav` for each conversation;
    returns one record per sample (length, stop, duration ratio, silent share) and the waveforms."""
    out_dir.mkdir(parents=True, exist_ok=True)
    frame_rate = audio_tokenizer.config.frame_rate
    samples_per_frame = round(TARGET_SAMPLE_RATE / frame_rate)
    device = next(audio_tokenizer.parameters()).device
    records, waveforms = [], []
    generated = tqdm(generate_in_batches(model, collator, conversations, eval_cfg), total=len(conversations),
                     desc="generating samples", unit="sample", leave=False, disable=not show_progress)
    for conversation, codes, stopped in generated:
        if codes.shape[1] > 0:
            waveform = audio_tokenizer.decode(codes[None].to(device)).audio_values[0, 0].float().cpu().numpy()
        else:
            waveform = np.zeros(0, dtype=np.float32)
        path = out_dir / f"{str(conversation['id']).replace('/', '_')}.wav"
        sf.write(path, waveform, TARGET_SAMPLE_RATE)
        record = {"id": conversation["id"], "path": str(path), "text": last_user_text(conversation["messages"]),
                  "frames": int(codes.shape[1]), "stopped": stopped,
                  "silent_share": silent_share(waveform, samples_per_frame, eval_cfg.silence_db)}
        heard = target_audio(conversation["messages"]) or next(
            (i for m in conversation["messages"] for i in m["content"] if i["type"] == "audio"), {})
        if "path" in heard:  # the clip to listen to beside the sample: its target, else the prompt's reference
            record["target_audio"] = heard["path"]
        target = (target_audio(conversation["messages"]) or {}).get("codes")
        if target is not None:  # how closely the sample follows the clip the prompt was made from
            shared = min(target.shape[1], codes.shape[1])
            record["target_frames"] = int(target.shape[1])
            record["frame_match"] = float((codes[:, :shared] == target[:, :shared]).all(dim=0).sum()
                                          / target.shape[1])
            expected = target.shape[1]
        else:
            expected = expected_frames_from_text(record["text"], frame_rate, eval_cfg.chars_per_second)
        record["duration_ratio"] = duration_ratio(record["frames"], expected)
        records.append(record)
        waveforms.append(waveform)
    return records, waveforms
