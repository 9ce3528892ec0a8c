"""What makes a training clip bad, as numbers from its waveform: noise (an SNR estimate), clipping, silence (inside,
before and after the speech). Used by `higgs-prep ingest` and `higgs-prep score` through the metric registry.

Levels are read in 20 ms frames. The SNR estimate needs no clean reference: the noise is the mean power of the
quietest tenth of the frames, the signal the mean power of the louder half above it, so a clip that is noise all
through scores near 0 dB and speech with clean pauses scores high (capped at `SNR_CAP_DB`).
"""

from __future__ import annotations

import numpy as np

from higgs_train.data.audio import TARGET_SAMPLE_RATE

FRAME = int(0.02 * TARGET_SAMPLE_RATE)
SNR_CAP_DB = 60.0
FULL_SCALE = 0.99  # |sample| at or above this counts as clipped
SILENCE_BELOW_PEAK_DB = 40.0  # a frame this far below the clip's loudest frame is silence


def _frame_power(waveform: np.ndarray) -> np.ndarray:
    count = len(waveform) // FRAME
    frames = waveform[: count * FRAME].reshape(count, FRAME).astype(np.float64)
    return (frames ** 2).mean(axis=1)


def snr_db(waveform: np.ndarray) -> float:
    power = np.sort(_frame_power(waveform))
    if len(power) < 10:
        return 0.0
    noise = power[: max(len(power) // 10, 1)].mean()
    signal = power[len(power) // 2:].mean() - noise
    if signal <= 0:
        return 0.0
    return float(min(10 * np.log10(signal / max(noise, 1e-20)), SNR_CAP_DB))


def clipping_share(waveform: np.ndarray) -> float:
    """Share of samples at full scale (read from the audio as recorded, before any gain)."""
    return float((np.abs(waveform) >= FULL_SCALE).mean()) if len(waveform) else 0.0


def _silent(waveform: np.ndarray) -> np.ndarray:
    power = _frame_power(waveform)
    if not len(power) or power.max() <= 0:
        return np.ones(len(power), bool)
    return 10 * np.log10(power / power.max() + 1e-20) < -SILENCE_BELOW_PEAK_DB


def silence_facts(waveform: np.ndarray) -> dict:
    """silent_share (of frames), leading_silence and trailing_silence (seconds) relative to the clip's peak level."""
    silent = _silent(waveform)
    sounding = np.flatnonzero(~silent)
    frame_seconds = FRAME / TARGET_SAMPLE_RATE
    if not len(sounding):
        seconds = len(silent) * frame_seconds
        return {"silent_share": 1.0, "leading_silence": seconds, "trailing_silence": seconds}
    return {"silent_share": float(silent.mean()), "leading_silence": float(sounding[0] * frame_seconds),
            "trailing_silence": float((len(silent) - 1 - sounding[-1]) * frame_seconds)}
