"""What a listener checks first, as numbers computed from a sample's codes and waveform: did it stop, is it as long
as it should be, how much of it is silence (at its end above all), does it loop.

A sample's expected length is its target clip's (a held-out conversation, a test list's ground truth) or, for a
prompt without one, its transcript's length at an average speaking rate. Levels are read in 40 ms frames (one
frame of the audio tokenizer at 25 frames/s).
"""

from __future__ import annotations

import numpy as np
import torch

from higgs_train.data.tasks.layout import SPEAKER_TAG

LOOP_WINDOW = 50  # frames (2 s at 25 frames/s) a repeated code frame is looked for in


def expected_frames_from_text(text: str, frame_rate: float, chars_per_second: float) -> float:
    """Frames a transcript takes when read at `chars_per_second` (speaker tags and spaces runs not counted)."""
    spoken = " ".join(SPEAKER_TAG.sub(" ", text).split())
    return max(len(spoken), 1) / chars_per_second * frame_rate


def duration_ratio(frames: int, expected_frames: float) -> float:
    """Generated length over expected length: 1.0 is right, below is cut short, far above is a model that rambles."""
    return frames / max(expected_frames, 1e-9)


def _silent_frames(waveform: np.ndarray, samples_per_frame: int, silence_db: float) -> np.ndarray:
    frames = len(waveform) // samples_per_frame
    blocks = waveform[: frames * samples_per_frame].reshape(frames, samples_per_frame).astype(np.float64)
    return np.sqrt((blocks**2).mean(axis=1)) < 10 ** (silence_db / 20)


def silent_share(waveform: np.ndarray, samples_per_frame: int, silence_db: float) -> float:
    """Share of frames whose RMS level is below `silence_db` dBFS; 1.0 for an empty waveform."""
    silent = _silent_frames(waveform, samples_per_frame, silence_db)
    return float(silent.mean()) if len(silent) else 1.0


def trailing_silence_share(waveform: np.ndarray, samples_per_frame: int, silence_db: float) -> float:
    """Share of the sample that is silence after its last sound (what users trim by hand); 1.0 when empty."""
    silent = _silent_frames(waveform, samples_per_frame, silence_db)
    if not len(silent):
        return 1.0
    sounding = np.flatnonzero(~silent)
    return 1.0 if not len(sounding) else float((len(silent) - 1 - sounding[-1]) / len(silent))


def loop_share(codes: torch.Tensor, window: int = LOOP_WINDOW) -> float:
    """Share of code frames that repeat, in all K codebooks, a frame of the `window` before them. Speech almost
    never repeats 8 codes at once; a model stuck in a loop (or a frozen silence) does at every frame."""
    frames = codes.T  # (T, K)
    if len(frames) < 2:
        return 0.0
    repeated = torch.zeros(len(frames), dtype=torch.bool)
    for lag in range(1, min(window, len(frames) - 1) + 1):
        repeated[lag:] |= (frames[lag:] == frames[:-lag]).all(dim=1)
    return float(repeated.float().mean())
