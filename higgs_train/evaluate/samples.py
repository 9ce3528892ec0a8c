"""Listening to the model: greedy/sampled generation for a few prompts, decoded to 24 kHz wav files."""

from __future__ import annotations

from pathlib import Path

import soundfile as sf
import torch
from transformers import GenerationConfig

from higgs_train.data.audio import TARGET_SAMPLE_RATE
from higgs_train.data.delay_pattern import codes_from_generation


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


@torch.no_grad()
def write_samples(model, audio_tokenizer, collator, conversations: list[dict], eval_cfg, out_dir: Path) -> list[dict]:
    """Generate, decode and write `<out_dir>/<id>.wav` for each conversation; returns one record per sample."""
    out_dir.mkdir(parents=True, exist_ok=True)
    records = []
    for conversation, (codes, stopped) in zip(conversations, generate_codes(model, collator, conversations, eval_cfg)):
        if codes.shape[1] > 0:
            device = next(audio_tokenizer.parameters()).device
            waveform = audio_tokenizer.decode(codes[None].to(device)).audio_values[0, 0].float().cpu().numpy()
        else:
            waveform = torch.zeros(0).numpy()
        path = out_dir / f"{str(conversation['id']).replace('/', '_')}.wav"
        sf.write(path, waveform, TARGET_SAMPLE_RATE)
        record = {"id": conversation["id"], "path": str(path), "frames": int(codes.shape[1]), "stopped": stopped}
        target = conversation["messages"][-1]["content"][-1].get("codes")
        if target is not None:  # how closely the sample follows the clip the prompt was made from
            shared = min(target.shape[1], codes.shape[1])
            record["target_frames"] = int(target.shape[1])
            record["frame_match"] = float((codes[:, :shared] == target[:, :shared]).all(dim=0).sum() / target.shape[1])
        records.append(record)
    return records
