"""Checking one clip before it becomes training audio: decodable, finite, not silent, within the length limits, then
24 kHz mono. A clip that fails raises `BadRow` with a short reason that rejection reports and run summaries count.
`higgs-prep convert` and training from a conversation JSONL use these same checks (`row_checks.py`)."""

from __future__ import annotations

import io
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

from higgs_train.data.audio import TARGET_SAMPLE_RATE, read_file

# Peak amplitude under which a clip counts as silent (about -80 dBFS).
SILENCE_PEAK = 1e-4


class BadRow(ValueError):
    """A source row that cannot be used; `reason` is one of a few fixed phrases so rejections can be counted."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}{': ' + detail if detail else ''}")
        self.reason, self.detail = reason, detail


def wav_shortfall(path: Path) -> int:
    """Bytes a WAV file's header promises in its data chunk beyond what the file holds (a copy cut short, which
    libsndfile reads without a word as a shorter clip); 0 for a complete file or another format."""
    with open(path, "rb") as handle:
        header = handle.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return 0
        while True:
            chunk = handle.read(8)
            if len(chunk) < 8:
                return 0
            size = int.from_bytes(chunk[4:], "little")
            if chunk[:4] == b"data":
                left = path.stat().st_size - handle.tell()
                return 0 if size in (0, 0xFFFFFFFF) else max(0, size - left)  # 0 / -1: a streamed file's size
            handle.seek(size + size % 2, 1)


def decode(source: str | Path | bytes) -> tuple[np.ndarray, int]:
    """(samples x channels float32, rate) from a file path or encoded bytes; soundfile first, librosa for the rest."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise BadRow("missing audio file", str(path))
        if path.stat().st_size == 0:
            raise BadRow("undecodable audio", "0-byte file")
        missing = wav_shortfall(path)
        if missing:
            raise BadRow("truncated audio", f"{path} ends {missing} bytes before its header says (copy it again)")
    try:
        if isinstance(source, bytes):
            return sf.read(io.BytesIO(source), dtype="float32", always_2d=True)
        return read_file(source)
    except Exception as error:  # noqa: BLE001 - any decoder failure becomes a counted rejection
        raise BadRow("undecodable audio", str(error)) from None


def checked_waveform(waveform: np.ndarray, rate: int, min_seconds: float, max_seconds: float) -> np.ndarray:
    """Decoded samples (x channels) as float32 mono at their own rate, or `BadRow` saying why they cannot be trained
    on."""
    if waveform.size == 0:
        raise BadRow("empty audio")
    if not np.isfinite(waveform).all():
        raise BadRow("non-finite samples (NaN or inf)")
    mono = waveform.reshape(len(waveform), -1).mean(axis=1)
    if np.abs(mono).max() < SILENCE_PEAK:
        raise BadRow("silent audio")
    seconds = len(mono) / rate
    if not min_seconds <= seconds <= max_seconds:
        raise BadRow("duration out of range", f"{seconds:.2f} s not in [{min_seconds}, {max_seconds}]")
    return mono.astype(np.float32, copy=False)


def checked_clip(source: str | Path | bytes, min_seconds: float, max_seconds: float) -> np.ndarray:
    """The clip as float32 mono at 24 kHz (soxr resampling), or `BadRow` saying why it cannot be trained on."""
    waveform, rate = decode(source)
    mono = checked_waveform(waveform, rate, min_seconds, max_seconds)
    if rate != TARGET_SAMPLE_RATE:
        mono = librosa.resample(mono, orig_sr=rate, target_sr=TARGET_SAMPLE_RATE, res_type="soxr_hq")
    return np.ascontiguousarray(mono, dtype=np.float32)
