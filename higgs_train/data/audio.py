"""Reading clips as the audio tokenizer wants them: float32 mono at 24 kHz."""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

TARGET_SAMPLE_RATE = 24000


def load_audio(source: str | Path | np.ndarray, sample_rate: int = TARGET_SAMPLE_RATE,
               source_rate: int | None = None) -> np.ndarray:
    """A file (decoded with soundfile) or an array at `source_rate` (samples, or samples x channels) -> mono float32
    at `sample_rate`, resampled with soxr."""
    if isinstance(source, np.ndarray):
        if source_rate is None:
            raise ValueError("an audio array needs its sampling rate")
        waveform = source.reshape(len(source), -1).astype(np.float32)
    else:
        waveform, source_rate = sf.read(str(source), dtype="float32", always_2d=True)
    waveform = waveform.mean(axis=1)
    if source_rate != sample_rate:
        waveform = librosa.resample(waveform, orig_sr=source_rate, target_sr=sample_rate, res_type="soxr_hq")
    return np.ascontiguousarray(waveform, dtype=np.float32)
