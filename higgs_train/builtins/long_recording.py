"""A long raw recording with known content, spoken by espeak-ng, for the ingest tests and benchmark: sentences
separated by pauses, with stretches ingest must reject (silence, loud noise), one sentence over-driven into clipping
and one at a tenth of the loudness. Where each sentence lies is returned, so tests can check every cut."""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

from higgs_train.builtins.demo_data import espeak_binary
from higgs_train.data.audio import TARGET_SAMPLE_RATE, load_audio

SENTENCES = [
    "The sun rises in the east every morning.",
    "Please close the door behind you when you leave.",
    "We walked along the quiet river until dark.",
    "Coffee tastes better when the house is still.",
    "The train leaves the station at seven tonight.",
    "She painted the garden fence a bright blue.",
    "A small bird sang on the roof of the barn.",
    "Turn left at the next corner and keep walking.",
    "The library opens at nine on most days.",
    "He forgot his umbrella at the office again.",
    "Bright stars filled the cold winter sky.",
    "Our garden needs more rain this summer.",
    "The old clock in the hall ticked softly.",
    "Fresh bread smells wonderful in the kitchen.",
    "The children played football in the park.",
    "My brother reads the newspaper every day.",
    "The shop on the corner sells fresh fruit.",
    "We watched a film about the deep ocean.",
    "The road to the village was long and narrow.",
    "Her cat sleeps on the warm window sill.",
]


@dataclass
class Recording:
    path: Path
    sentences: list[str]
    spans: list[tuple[float, float]]  # (start, end) seconds of each sentence's speech
    silence: tuple[float, float]
    noise: tuple[float, float]
    clipped: int  # index of the over-driven sentence
    quiet: int  # index of the sentence at a tenth of the loudness


def speak(text: str, voice: str = "en-us") -> np.ndarray:
    """espeak-ng's speech of `text` at 24 kHz, its leading and trailing silence trimmed."""
    with tempfile.TemporaryDirectory() as folder:
        wav = Path(folder) / "s.wav"
        subprocess.run([espeak_binary(), "-v", voice, "-w", str(wav), text], check=True, capture_output=True)
        speech = load_audio(wav)
    trimmed, _ = librosa.effects.trim(speech, top_db=45, frame_length=512, hop_length=128)
    return trimmed


def make_recording(path: str | Path, sentences: list[str] = SENTENCES, seed: int = 0, clipped: int = 5,
                   quiet: int = 12, repeat: int = 1) -> Recording:
    """Writes the recording (24 kHz mono 16-bit WAV): the sentences `repeat` times with 0.4-1.5 s pauses, 3 s of
    silence after the 4th and 2 s of loud noise after the 9th; returns where everything is."""
    rng = np.random.default_rng(seed)
    spoken = {text: speak(text) for text in sentences}
    parts, spans, texts, position = [], [], [], 0.0
    silence = noise = (0.0, 0.0)

    def add(samples: np.ndarray) -> tuple[float, float]:
        nonlocal position
        parts.append(samples.astype(np.float32))
        start = position
        position += len(samples) / TARGET_SAMPLE_RATE
        return start, position

    def pause(seconds: float) -> None:
        add(np.zeros(int(seconds * TARGET_SAMPLE_RATE), np.float32))

    pause(0.5)
    for index in range(len(sentences) * repeat):
        text = sentences[index % len(sentences)]
        speech = spoken[text] / max(np.abs(spoken[text]).max(), 1e-6) * 0.5
        if index == clipped:
            speech = np.clip(speech * 8, -1.0, 1.0)
        elif index == quiet:
            speech = speech / 10
        spans.append(add(speech))
        texts.append(text)
        pause(rng.uniform(0.4, 1.5))
        if index == 3:
            silence = add(np.zeros(3 * TARGET_SAMPLE_RATE, np.float32))
            pause(0.5)
        elif index == 8:
            noise = add(rng.normal(0, 0.3, 2 * TARGET_SAMPLE_RATE).clip(-1, 1).astype(np.float32))
            pause(0.5)
    sf.write(str(path), np.concatenate(parts), TARGET_SAMPLE_RATE, subtype="PCM_16")
    return Recording(Path(path), texts, spans, silence, noise, clipped, quiet)


def compressed_stereo_copy(recording: Path, out: str | Path) -> Path:
    """The recording as 44.1 kHz stereo Ogg Vorbis (a compressed container and another rate and channel count)."""
    mono = load_audio(recording, 44100)
    stereo = np.stack([mono, mono * 0.9], axis=1)
    with sf.SoundFile(str(out), "w", 44100, 2, format="OGG", subtype="VORBIS") as handle:
        for start in range(0, len(stereo), 44100):  # one large Vorbis write crashes libsndfile
            handle.write(stereo[start:start + 44100])
    return Path(out)
