"""Reading clips as the audio tokenizer wants them: float32 mono at 24 kHz, through one decoder (soundfile, then
librosa for the containers libsndfile cannot open), which the data checks, encoding and evaluation all use."""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

TARGET_SAMPLE_RATE = 24000


def read_file(path: str | Path) -> tuple[np.ndarray, int]:
    """(samples x channels float32, rate) of an audio file: soundfile first, librosa (audioread) for the rest; the
    error of the last one tried when neither can."""
    try:
        return sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as sf_error:  # noqa: BLE001 - any soundfile failure: try the other decoder
        import warnings

        try:
            with warnings.catch_warnings():  # librosa announces its audioread fallback; the outcome is what counts
                warnings.simplefilter("ignore")
                waveform, rate = librosa.load(str(path), sr=None, mono=False)
        except Exception as error:  # noqa: BLE001
            raise RuntimeError(f"{sf_error}; {type(error).__name__}") from None
        return np.atleast_2d(waveform).T.astype(np.float32), int(rate)


def audio_length(path: str | Path) -> tuple[int, int]:
    """(rate, frames) of an audio file, from its header where soundfile reads one, else by decoding it."""
    try:
        info = sf.info(str(path))
        return info.samplerate, info.frames
    except Exception:  # noqa: BLE001 - a container only the other decoder opens
        waveform, rate = read_file(path)
        return rate, len(waveform)


def load_audio(source: str | Path | np.ndarray, sample_rate: int = TARGET_SAMPLE_RATE,
               source_rate: int | None = None) -> np.ndarray:
    """A file (decoded with soundfile) or an array at `source_rate` (samples, or samples x channels) -> mono float32
    at `sample_rate`, resampled with soxr."""
    if isinstance(source, np.ndarray):
        if source_rate is None:
            raise ValueError("an audio array needs its sampling rate")
        waveform = source.reshape(len(source), -1).astype(np.float32)
    else:
        waveform, source_rate = read_file(source)
    waveform = waveform.mean(axis=1)
    if source_rate != sample_rate:
        waveform = librosa.resample(waveform, orig_sr=source_rate, target_sr=sample_rate, res_type="soxr_hq")
    return np.ascontiguousarray(waveform, dtype=np.float32)
