"""Reading clips as the audio tokenizer wants them: float32 mono at 24 kHz."""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

TARGET_SAMPLE_RATE = 24000


def load_audio(path: str | Path, sample_rate: int = TARGET_SAMPLE_RATE) -> np.ndarray:
    """Decode with soundfile, downmix to mono and resample (soxr) to `sample_rate`."""
    waveform, source_rate = sf.read(str(path), dtype="float32", always_2d=True)
    waveform = waveform.mean(axis=1)
    if source_rate != sample_rate:
        waveform = librosa.resample(waveform, orig_sr=source_rate, target_sr=sample_rate, res_type="soxr_hq")
    return np.ascontiguousarray(waveform, dtype=np.float32)
