"""What a listener checks first, as numbers: did each sample stop, is it as long as it should be, is it silent.

A sample's expected length is its target clip's (a held-out conversation) or, for a prompt without one, its
transcript's length at an average speaking rate.
"""

from __future__ import annotations

import numpy as np

from higgs_train.data.tasks.layout import SPEAKER_TAG


def expected_frames_from_text(text: str, frame_rate: float, chars_per_second: float) -> float:
    """Frames a transcript takes when read at `chars_per_second` (speaker tags and spaces runs not counted)."""
    spoken = " ".join(SPEAKER_TAG.sub(" ", text).split())
    return max(len(spoken), 1) / chars_per_second * frame_rate


def duration_ratio(frames: int, expected_frames: float) -> float:
    """Generated length over expected length: 1.0 is right, below is cut short, far above is a model that rambles."""
    return frames / max(expected_frames, 1e-9)


def silent_share(waveform: np.ndarray, samples_per_frame: int, silence_db: float) -> float:
    """Share of frames whose RMS level is below `silence_db` dBFS; 1.0 for an empty waveform."""
    frames = len(waveform) // samples_per_frame
    if frames == 0:
        return 1.0
    blocks = waveform[: frames * samples_per_frame].reshape(frames, samples_per_frame).astype(np.float64)
    rms = np.sqrt((blocks**2).mean(axis=1))
    return float((rms < 10 ** (silence_db / 20)).mean())


def summarize(records: list[dict]) -> dict[str, float]:
    """Means over the samples of one evaluation: stop rate, duration ratio, silent share (and WER / speaker
    similarity when they were measured)."""
    if not records:
        return {}
    summary = {"stop_rate": sum(r["stopped"] for r in records) / len(records)}
    for key in ("duration_ratio", "silent_share", "wer", "speaker_similarity"):
        values = [r[key] for r in records if r.get(key) is not None]
        if values:
            summary[key] = float(np.mean(values))
    return summary
