"""Audio encoding throughput: our cache encoder vs the processor's one-clip-at-a-time loop, plus what naive padded
batching would cost in code agreement.

    HIGGS_TRAIN_CACHE=/tmp/htcache .venv/bin/python benchmarks/encoding.py

Same 16 espeak-ng demo clips (24 kHz, 1.6-2.4 s) for every variant, side by side in one process, with the tiny audio
tokenizer and the real-size tokenizer architecture (random weights, ~200M parameters).
"""

from __future__ import annotations

import os
import time

import numpy as np
import torch
from transformers import HiggsAudioV2TokenizerConfig, HiggsAudioV2TokenizerModel

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from higgs_train.builtins.assets import ensure_builtin  # noqa: E402
from higgs_train.data.audio import load_audio  # noqa: E402
from higgs_train.data.audio_codes import encode_files, encode_waveform  # noqa: E402
from higgs_train.model.loading import load_processor  # noqa: E402

NUM_CLIPS = 16


def real_size_tokenizer() -> HiggsAudioV2TokenizerModel:
    """The released tokenizer's architecture (DAC + HuBERT-base, 25 frames/s, 8 quantizers), random weights."""
    config = HiggsAudioV2TokenizerConfig(
        target_bandwidths=[0.5, 1, 1.5, 2],
        acoustic_model_config=dict(downsampling_ratios=[8, 5, 4, 2, 3], upsampling_ratios=[8, 5, 4, 2, 3]))
    torch.manual_seed(0)
    model = HiggsAudioV2TokenizerModel(config).eval()
    generator = torch.Generator().manual_seed(0)
    for name, buffer in model.named_buffers():
        if name.endswith("codebook.embed") or name.endswith("codebook.embed_avg"):
            buffer.copy_(torch.randn(buffer.shape, generator=generator))
    return model


def padded_batches(tokenizer, waveforms: list[np.ndarray], frames: list[int], batch_size: int) -> list[torch.Tensor]:
    """What a naive batched encoder does: pad to the batch's longest clip, then cut each clip's frames back out."""
    codes = []
    for start in range(0, len(waveforms), batch_size):
        group = waveforms[start:start + batch_size]
        values = torch.zeros(len(group), 1, max(len(w) for w in group))
        for row, waveform in enumerate(group):
            values[row, 0, :len(waveform)] = torch.from_numpy(waveform)
        with torch.inference_mode():
            out = tokenizer.encode(values).audio_codes
        codes += [out[row, :, :n] for row, n in enumerate(frames[start:start + batch_size])]
    return codes


def measure(name: str, processor, tokenizer, paths: list[str]) -> None:
    waveforms = [load_audio(p) for p in paths]
    seconds = sum(len(w) for w in waveforms) / 24000
    processor.audio_tokenizer = tokenizer
    encode_waveform(tokenizer, waveforms[0])  # warm-up

    start = time.perf_counter()
    processor(text=[processor.audio_token * len(waveforms)], audio=waveforms, return_tensors="pt")
    processor_s = time.perf_counter() - start

    start = time.perf_counter()
    ours = dict(encode_files(tokenizer, paths, batch_size=8))
    ours_s = time.perf_counter() - start

    single = [encode_waveform(tokenizer, w) for w in waveforms]
    exact = all(torch.equal(ours[p], s) for p, s in zip(paths, single))
    by_length = sorted(range(len(waveforms)), key=lambda i: len(waveforms[i]))
    start = time.perf_counter()
    padded = padded_batches(tokenizer, [waveforms[i] for i in by_length],
                            [single[i].shape[1] for i in by_length], batch_size=8)
    padded_s = time.perf_counter() - start
    agreement = np.mean([(padded[k] == single[i]).float().mean().item() for k, i in enumerate(by_length)])

    print(f"\n{name}: {len(paths)} clips, {seconds:.1f} audio-s")
    print("| encoder | audio-s/s | vs processor | codes equal to one-at-a-time |")
    print("|---|---|---|---|")
    print(f"| processor, one clip at a time | {seconds / processor_s:.1f} | 1x | yes |")
    print(f"| ours (`higgs-prep encode`) | {seconds / ours_s:.1f} | {processor_s / ours_s:.2f}x | "
          f"{'yes' if exact else 'NO'} |")
    print(f"| naive padded batches of 8 (not used) | {seconds / padded_s:.1f} | {processor_s / padded_s:.2f}x | "
          f"{100 * agreement:.1f}% of codes |")


def main() -> None:
    torch.set_num_threads(2)
    checkpoint, demo = ensure_builtin("tiny"), ensure_builtin("demo")
    processor = load_processor(str(checkpoint))
    paths = sorted(str(p) for p in (demo / "clips").glob("*.wav"))[:NUM_CLIPS]
    measure("tiny audio tokenizer", processor, processor.audio_tokenizer, paths)
    measure("real-size audio tokenizer (random weights)", processor, real_size_tokenizer(), paths)


if __name__ == "__main__":
    main()
