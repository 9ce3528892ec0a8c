"""Audio -> codes through the model's own audio tokenizer, once per distinct clip, batched where that is exact.

The tokenizer's codes depend on padding: its HuBERT branch normalises and attends over the whole input, so a clip
padded by even 5 ms gets other codes for a few percent of its frames (BENCHMARKS.md). Batches therefore only join
clips of identical length, which gives exactly the codes of encoding each clip alone, the codes the processor makes
at inference. Decoding and resampling of the next batch run in a thread while the current batch encodes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import groupby
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from higgs_train.data.audio import audio_length, load_audio
from higgs_train.runtime.progress import progress_bar


@torch.inference_mode()
def encode_waveforms(audio_tokenizer, waveforms: list[np.ndarray]) -> list[torch.Tensor]:
    """Equal-length 24 kHz mono waveforms -> one (K, T) code tensor each."""
    device = next(audio_tokenizer.parameters()).device
    values = torch.from_numpy(np.stack(waveforms)).to(device)[:, None, :]
    return list(audio_tokenizer.encode(values).audio_codes.cpu())


def encode_waveform(audio_tokenizer, waveform: np.ndarray) -> torch.Tensor:
    """A 24 kHz mono waveform -> (K, T) codes."""
    return encode_waveforms(audio_tokenizer, [waveform])[0]


def _batches(paths: list[str], lengths: dict[str, tuple[int, int]], batch_size: int) -> list[list[str]]:
    """Clips grouped by identical (rate, length), at most `batch_size` per batch, longest first (an OOM shows early)."""
    ordered = sorted(paths, key=lambda p: (lengths[p], p), reverse=True)
    batches = []
    for _, group in groupby(ordered, key=lengths.__getitem__):
        group = list(group)
        batches += [group[i:i + batch_size] for i in range(0, len(group), batch_size)]
    return batches


def unreadable_clips(paths: list[str]) -> dict[str, str]:
    """path -> why it cannot be read, for the clips that are missing or whose header does not decode."""
    problems = {}
    for path in paths:
        if not Path(path).is_file():
            problems[path] = "missing audio file"
            continue
        try:
            audio_length(path)
        except (RuntimeError, sf.LibsndfileError) as error:
            problems[path] = f"undecodable audio: {error}"
    return problems


def _load_all(batch: list[str], unreadable: dict[str, str] | None) -> list[np.ndarray | None]:
    """The batch's waveforms; with `unreadable` given, a clip that fails to decode is None and recorded there."""
    if unreadable is None:
        return [load_audio(p) for p in batch]
    waveforms = []
    for path in batch:
        try:
            waveforms.append(load_audio(path))
        except (RuntimeError, ValueError, sf.LibsndfileError) as error:
            unreadable[path] = f"undecodable audio: {error}"
            waveforms.append(None)
    return waveforms


def encode_files(audio_tokenizer, paths: list[str], batch_size: int = 8,
                 unreadable: dict[str, str] | None = None) -> Iterator[tuple[str, torch.Tensor]]:
    """(path, codes) for every file, batching identical lengths; a progress bar shows clips/s and audio-seconds/s.
    With `unreadable` given, clips that cannot be read are skipped and recorded there (path -> reason) instead of
    stopping the whole run."""
    if unreadable is not None:
        unreadable.update(unreadable_clips(sorted(set(paths))))
        paths = [p for p in paths if p not in unreadable]
    lengths = {p: audio_length(p) for p in set(paths)}
    batches = _batches(sorted(lengths), lengths, batch_size)
    milliseconds = {p: round(1000 * frames / rate) for p, (rate, frames) in lengths.items()}
    # Counted in integer milliseconds (shown as seconds), so the bar ends exactly at its total.
    progress = progress_bar(total=sum(milliseconds.values()), desc="encoding audio", unit="audio-s", unit_scale=0.001,
                    bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} audio-s [{elapsed}<{remaining}, {rate_fmt}{postfix}]")
    started, done = time.time(), 0
    with ThreadPoolExecutor(max_workers=1) as loader:
        pending = loader.submit(_load_all, batches[0], unreadable) if batches else None
        for index, batch in enumerate(batches):
            loaded = [(p, w) for p, w in zip(batch, pending.result()) if w is not None]
            if index + 1 < len(batches):
                pending = loader.submit(_load_all, batches[index + 1], unreadable)
            if loaded:
                yield from zip([p for p, _ in loaded], encode_waveforms(audio_tokenizer, [w for _, w in loaded]))
            done += len(batch)
            progress.update(sum(milliseconds[p] for p in batch))
            progress.set_postfix(clips_per_s=f"{done / max(time.time() - started, 1e-9):.2f}")
    progress.close()


def _audio_items(conversations: list[dict]) -> Iterator[dict]:
    for row in conversations:
        for message in row["messages"]:
            for item in message["content"]:
                if item["type"] == "audio" and "codes" not in item:
                    yield item


def attach_codes(conversations: list[dict], audio_tokenizer, batch_size: int = 8) -> None:
    """Fill `codes` into every audio item of prompts or a few conversations (generation, evaluation prompts):
    encoded now, each distinct clip once. Training reads its codes from the training table instead."""
    items = list(_audio_items(conversations))
    for item in items:
        if "array" in item:
            waveform = load_audio(np.asarray(item["array"], dtype=np.float32), source_rate=item["sampling_rate"])
            item["codes"] = encode_waveform(audio_tokenizer, waveform)
    paths = sorted({item["path"] for item in items if "codes" not in item})
    codes = dict(encode_files(audio_tokenizer, paths, batch_size))
    for item in items:
        if "codes" not in item:
            item["codes"] = codes[item["path"]]
