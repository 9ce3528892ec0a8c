"""Where to cut a recording into clips: silero-vad's speech probability (its real model, shipped inside its wheel)
and the level of every 32 ms frame, read in one streaming pass, then clips planned between pauses.

A clip starts and ends in a pause, never inside a word: speech runs closer than `min_pause` are one utterance; an
utterance shorter than `min_seconds` joins its nearer neighbour when the two fit in `max_seconds`; one longer than
`max_seconds` is cut at its quietest frame (least speech-like, then lowest level) where both sides keep at least
`min_seconds`. Each clip keeps `pad` seconds of context on either side, at most half the pause to its neighbour.
Stretches without speech of `LISTED_GAP_SECONDS` or more are returned too, so the report can list what was left out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import soxr
import torch

from higgs_train.data.audio import TARGET_SAMPLE_RATE

VAD_RATE = 16000
VAD_CHUNK = 512  # samples at 16 kHz: one 32 ms frame, the size silero-vad takes
FRAME_SECONDS = VAD_CHUNK / VAD_RATE
LEVEL_SAMPLES = round(FRAME_SECONDS * TARGET_SAMPLE_RATE)
SPEECH_ON, SPEECH_OFF = 0.5, 0.35  # hysteresis on the speech probability
MIN_RUN_SECONDS = 0.25  # shorter bursts (clicks, breaths) are not speech
LISTED_GAP_SECONDS = 2.0


@dataclass
class Frames:
    """Per 32 ms frame of a recording: silero-vad's speech probability and the RMS level in dBFS."""

    speech: np.ndarray
    level_db: np.ndarray


class FrameReader:
    """Streams 24 kHz blocks through silero-vad (its state carried across blocks) and a frame level meter."""

    def __init__(self):
        from silero_vad import load_silero_vad

        self.model = load_silero_vad()

    @torch.inference_mode()
    def read(self, blocks) -> Frames:
        self.model.reset_states()
        resampler = soxr.ResampleStream(TARGET_SAMPLE_RATE, VAD_RATE, 1, dtype="float32", quality="HQ")
        pending16, pending24 = np.zeros(0, np.float32), np.zeros(0, np.float32)
        speech, levels = [], []
        for block in blocks:
            pending16 = np.concatenate([pending16, resampler.resample_chunk(block)])
            pending24 = np.concatenate([pending24, block])
            usable = len(pending16) // VAD_CHUNK
            chunks = torch.from_numpy(pending16[:usable * VAD_CHUNK].copy()).view(usable, VAD_CHUNK)
            speech.extend(float(self.model(chunk.unsqueeze(0), VAD_RATE)) for chunk in chunks)
            pending16 = pending16[usable * VAD_CHUNK:]
            whole = len(pending24) // LEVEL_SAMPLES
            frames = pending24[:whole * LEVEL_SAMPLES].reshape(whole, LEVEL_SAMPLES).astype(np.float64)
            levels.append(10 * np.log10((frames ** 2).mean(axis=1) + 1e-12))
            pending24 = pending24[whole * LEVEL_SAMPLES:]
        count = min(len(speech), sum(len(level) for level in levels))
        level_db = np.concatenate(levels)[:count] if levels else np.zeros(0)
        return Frames(np.asarray(speech[:count], np.float32), level_db)


def _speech_runs(speech: np.ndarray) -> list[list[int]]:
    """[first, end) frame ranges where the speech probability is on (with hysteresis)."""
    runs, start, on = [], 0, False
    for index, probability in enumerate(speech):
        if not on and probability >= SPEECH_ON:
            start, on = index, True
        elif on and probability < SPEECH_OFF:
            runs.append([start, index])
            on = False
    if on:
        runs.append([start, len(speech)])
    return runs


def _cut_long(run: list[int], frames: Frames, min_frames: int, max_frames: int) -> list[list[int]]:
    """A run longer than `max_frames`, cut at its quietest frames into pieces of `min_frames`..`max_frames`."""
    pieces, start, end = [], run[0], run[1]
    while end - start > max_frames:
        low, high = start + min_frames, min(start + max_frames, end - min_frames)
        if high <= low:
            break
        window = slice(low, high)
        quietness = frames.speech[window] * 100 + frames.level_db[window]  # least speech-like, then lowest level
        cut = low + int(np.argmin(quietness))
        pieces.append([start, cut])
        start = cut
    pieces.append([start, end])
    return pieces


def plan_clips(frames: Frames, min_seconds: float, max_seconds: float, pad: float,
               min_pause: float) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """(clips, long stretches without speech), both as (start, end) seconds."""
    to_frames = 1 / FRAME_SECONDS
    runs = [r for r in _speech_runs(frames.speech) if r[1] - r[0] >= MIN_RUN_SECONDS * to_frames]
    utterances: list[list[int]] = []
    for run in runs:
        if utterances and run[0] - utterances[-1][1] < min_pause * to_frames:
            utterances[-1][1] = run[1]
        else:
            utterances.append(list(run))
    min_frames, max_frames = round(min_seconds * to_frames), round(max_seconds * to_frames)
    index = 0
    while index < len(utterances):  # short utterances join their nearer neighbour when the two fit
        current = utterances[index]
        if current[1] - current[0] >= min_frames:
            index += 1
            continue
        gaps = [(current[0] - utterances[index - 1][1], index - 1) if index > 0 else None,
                (utterances[index + 1][0] - current[1], index + 1) if index + 1 < len(utterances) else None]
        fitting = [(gap, other) for gap, other in filter(None, gaps)
                   if max(current[1], utterances[other][1]) - min(current[0], utterances[other][0]) <= max_frames]
        if not fitting:
            index += 1
            continue
        _, other = min(fitting)
        merged = [min(current[0], utterances[other][0]), max(current[1], utterances[other][1])]
        first = min(index, other)
        utterances[first:first + 2] = [merged]
        index = first
    pieces = [piece for utterance in utterances for piece in _cut_long(utterance, frames, min_frames, max_frames)]
    total = len(frames.speech)
    clips = []
    for number, (start, end) in enumerate(pieces):
        before = (start - pieces[number - 1][1]) / 2 if number else start
        after = (pieces[number + 1][0] - end) / 2 if number + 1 < len(pieces) else total - end
        clips.append((max(start - min(pad * to_frames, before), 0) * FRAME_SECONDS,
                      min(end + min(pad * to_frames, after), total) * FRAME_SECONDS))
    edges = [0.0] + [second for clip in clips for second in clip] + [total * FRAME_SECONDS]
    gaps = [(edges[i], edges[i + 1]) for i in range(0, len(edges), 2) if edges[i + 1] - edges[i] >= LISTED_GAP_SECONDS]
    return clips, gaps
