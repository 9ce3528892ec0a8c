"""Raw recordings for `higgs-prep ingest`: finding them (a folder, a subfolder per speaker, or a list file), naming
their content (a hash, so cached work follows the audio, not its name) and reading them as 24 kHz mono in blocks, so
memory stays flat however long a recording is.

Files libsndfile opens (WAV, FLAC, Ogg Vorbis/Opus, MP3, ...) are streamed and seeked; any other container the
project decodes (librosa/audioread) is decoded whole, once, which a notice says.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf
import soxr

from higgs_train.data.audio import TARGET_SAMPLE_RATE, read_file

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".wma", ".aiff", ".aif", ".au"}
BLOCK_SECONDS = 30.0


class BadRecording(Exception):
    """This recording cannot be ingested; `reason` is the short category counted in the report."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class Recording:
    path: Path
    speaker: str
    text_path: Path | None  # its known text (`NAME.txt` beside it), when there is one


def find_recordings(source: str | Path, speaker: str | None) -> tuple[list[Recording], list[Path]]:
    """(the recordings under `source`, sorted by path; the subfolders that hold no audio, to report). `source` is a
    folder, searched recursively, or a text file listing one path a line. Speaker: `speaker` when given, else the
    recording's first-level subfolder under a folder `source`, else the folder's name."""
    source = Path(source)
    empty_folders = []
    if source.is_file():
        paths = [Path(line.strip()) for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
        root = None
    elif source.is_dir():
        paths = [p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES]
        root = source
        holding = {parent for p in paths for parent in p.parents}
        empty_folders = sorted(p for p in source.rglob("*") if p.is_dir() and p not in holding)
    else:
        raise FileNotFoundError(f"{source}: no such folder or list file; --data takes a folder of recordings, --list "
                                "a text file with one recording path a line")
    if not paths:
        raise FileNotFoundError(f"{source}: no audio files ({', '.join(sorted(AUDIO_SUFFIXES))}) found; point "
                                "--data at the folder that holds the recordings")
    recordings = []
    for path in sorted(paths):
        relative = path.relative_to(root) if root is not None else None
        name = speaker or (relative.parts[0] if relative is not None and len(relative.parts) > 1 else None) \
            or (root.name if root is not None else path.parent.name)
        text = path.with_suffix(".txt")
        recordings.append(Recording(path, name, text if text.is_file() else None))
    return recordings, empty_folders


def content_key(path: Path) -> str:
    """A hash of the file's bytes (read in blocks): the identity of all work done on this recording."""
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


class AudioReader:
    """One recording as 24 kHz mono float32: `blocks()` streams it start to end, `span()` reads one stretch."""

    def __init__(self, path: Path):
        self.path = path
        if path.stat().st_size == 0:
            raise BadRecording("empty file", f"{path}: the file is empty (0 bytes); re-export or remove it")
        try:
            self._file = sf.SoundFile(str(path))
            self._whole = None
            self.rate, frames = self._file.samplerate, self._file.frames
        except Exception:  # noqa: BLE001 - not a container libsndfile knows: decode whole with the other decoder
            self._file = None
            try:
                samples, self.rate = read_file(path)
            except Exception as error:  # noqa: BLE001
                raise BadRecording("not audio", f"{path}: cannot be decoded as audio ({str(error)[:120]}); convert "
                                   "it to WAV or FLAC, or remove it") from None
            self._whole = librosa.resample(samples.mean(axis=1), orig_sr=self.rate, target_sr=TARGET_SAMPLE_RATE,
                                           res_type="soxr_hq") if self.rate != TARGET_SAMPLE_RATE \
                else samples.mean(axis=1)
            frames = len(samples)
        if frames == 0:
            raise BadRecording("empty file", f"{path}: holds no audio samples; re-export or remove it")
        self.seconds = frames / self.rate

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

    def blocks(self, seconds: float = BLOCK_SECONDS) -> Iterator[np.ndarray]:
        """Consecutive 24 kHz mono blocks, resampled as one continuous stream."""
        if self._whole is not None:
            step = int(seconds * TARGET_SAMPLE_RATE)
            for start in range(0, len(self._whole), step):
                yield self._whole[start:start + step]
            return
        self._file.seek(0)
        stream = soxr.ResampleStream(self.rate, TARGET_SAMPLE_RATE, 1, dtype="float32", quality="HQ") \
            if self.rate != TARGET_SAMPLE_RATE else None
        for block in self._file.blocks(blocksize=int(seconds * self.rate), dtype="float32", always_2d=True):
            mono = np.ascontiguousarray(block.mean(axis=1))
            last = self._file.tell() >= self._file.frames
            yield stream.resample_chunk(mono, last=last) if stream is not None else mono

    def span(self, start: float, end: float) -> np.ndarray:
        """The stretch [start, end) seconds at 24 kHz mono."""
        if self._whole is not None:
            return self._whole[int(start * TARGET_SAMPLE_RATE):int(end * TARGET_SAMPLE_RATE)]
        first, last = int(start * self.rate), min(int(end * self.rate), self._file.frames)
        self._file.seek(first)
        mono = self._file.read(last - first, dtype="float32", always_2d=True).mean(axis=1)
        if self.rate == TARGET_SAMPLE_RATE:
            return mono
        return librosa.resample(mono, orig_sr=self.rate, target_sr=TARGET_SAMPLE_RATE, res_type="soxr_hq")
