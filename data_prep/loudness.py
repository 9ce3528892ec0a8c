"""Loudness normalisation of each clip to one target (ITU-R BS.1770 integrated loudness, measured by pyloudnorm),
with a peak ceiling the gain never pushes past. Per clip, not per recording: a sentence spoken far from the
microphone comes out as loud as the rest, which a voice trained on the clips needs."""

from __future__ import annotations

import numpy as np
import pyloudnorm

from higgs_train.data.audio import TARGET_SAMPLE_RATE

MIN_MEASURABLE_SECONDS = 0.4  # one BS.1770 gating block


def loudness(waveform: np.ndarray) -> float:
    """Integrated loudness in LUFS; -inf for silence or a clip shorter than one gating block."""
    if len(waveform) < MIN_MEASURABLE_SECONDS * TARGET_SAMPLE_RATE:
        return float("-inf")
    return float(pyloudnorm.Meter(TARGET_SAMPLE_RATE).integrated_loudness(waveform.astype(np.float64)))


def normalize(waveform: np.ndarray, target_lufs: float, peak_dbfs: float) -> tuple[np.ndarray, float, float]:
    """(the clip at `target_lufs`, or as close as the peak ceiling allows; its loudness before; the gain in dB).
    A clip with no measurable loudness is returned as it is (gain 0)."""
    before = loudness(waveform)
    if not np.isfinite(before):
        return waveform, before, 0.0
    gain_db = target_lufs - before
    peak = float(np.abs(waveform).max())
    if peak > 0:
        gain_db = min(gain_db, peak_dbfs - 20 * np.log10(peak))
    return (waveform * 10 ** (gain_db / 20)).astype(np.float32), before, float(gain_db)
