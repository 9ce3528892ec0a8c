"""Keeping or rejecting clips by their quality scores (`CLIP_METRICS` in the metric registry), each against a limit
the user can change (`--limit NAME=VALUE`), plus what only the whole set shows: speech-rate outliers, duplicate
audio or text, and (with a speaker model) a clip far from its speaker's centroid. Every clip gets its reasons; none
is deleted."""

from __future__ import annotations

import hashlib
from collections import defaultdict

import numpy as np

from higgs_train.evaluate.judges import normalize_for_wer
from higgs_train.evaluate.metrics import CLIP_METRICS
from higgs_train.runtime.errors import UserError

DEFAULT_LIMITS = {
    "snr_db": 15.0,  # at least
    "clipping_share": 0.001,  # at most, and so on by the metric's direction
    "silent_share": 0.6,
    "leading_silence": 1.0,
    "trailing_silence": 1.0,
    "asr_confidence": 0.4,
    "cer": 0.3,
    "speaker_distance": 0.5,
    "rate_deviation": 3.5,  # robust z-score of chars/s against the run's median
}
HIGHER_IS_BETTER = {name: metric.higher_is_better for name, metric in CLIP_METRICS.items()} | {
    "speaker_distance": False, "rate_deviation": False}


def audio_hash(waveform: np.ndarray) -> str:
    """The identity of a clip's 16-bit audio: equal audio, equal hash (duplicates; transcript cache keys)."""
    return hashlib.sha1((np.clip(waveform, -1, 1) * 32767).astype(np.int16).tobytes()).hexdigest()


def parse_limits(pairs: list[str]) -> dict[str, float]:
    """DEFAULT_LIMITS with the user's `NAME=VALUE` changes."""
    limits = dict(DEFAULT_LIMITS)
    for pair in pairs or []:
        name, _, value = pair.partition("=")
        if name not in limits:
            raise UserError(f"--limit {pair}: unknown score {name!r}; scores with limits: {', '.join(limits)}")
        try:
            limits[name] = float(value)
        except ValueError:
            raise UserError(f"--limit {pair}: {value!r} is not a number") from None
    return limits


def _rate_deviation(records: list[dict]) -> None:
    rates = np.array([r["chars_per_second"] for r in records if r.get("chars_per_second") is not None])
    if len(rates) < 5:
        return
    median = float(np.median(rates))
    spread = float(np.median(np.abs(rates - median))) * 1.4826 or 1e-9
    for record in records:
        if record.get("chars_per_second") is not None:
            record["rate_deviation"] = abs(record["chars_per_second"] - median) / spread


def _speaker_distances(records: list[dict]) -> None:
    by_speaker = defaultdict(list)
    for record in records:
        if record.get("speaker_embedding") is not None:
            by_speaker[record["speaker"]].append(record)
    for group in by_speaker.values():
        embeddings = np.array([r["speaker_embedding"] for r in group], np.float64)
        embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True) + 1e-12
        centroid = np.median(embeddings, axis=0)
        centroid /= np.linalg.norm(centroid) + 1e-12
        for record, embedding in zip(group, embeddings):
            record["speaker_distance"] = float(1 - embedding @ centroid)


def judge(records: list[dict], limits: dict[str, float], min_seconds: float, max_seconds: float) -> None:
    """Sets each record's `reasons` (empty: kept), in order; records need `seconds`, `text`, `audio_hash`."""
    _rate_deviation(records)
    _speaker_distances(records)
    seen_audio, seen_text = {}, {}
    for record in records:
        reasons = []
        if record["seconds"] < min_seconds:
            reasons.append("shorter than --min-seconds")
        elif record["seconds"] > max_seconds:
            reasons.append("longer than --max-seconds")
        for name, limit in limits.items():
            value = record.get(name)
            if value is None:
                continue
            if (value < limit) if HIGHER_IS_BETTER[name] else (value > limit):
                reasons.append(f"{name} {'below' if HIGHER_IS_BETTER[name] else 'above'} {limit:g}")
        text = normalize_for_wer(record["text"])
        if record["audio_hash"] in seen_audio:
            reasons.append(f"duplicate audio of {seen_audio[record['audio_hash']]}")
        elif text and text in seen_text:
            reasons.append(f"duplicate text of {seen_text[text]}")
        if not reasons:
            seen_audio[record["audio_hash"]] = record["id"]
            if text:
                seen_text[text] = record["id"]
        record["reasons"] = reasons


def reason_kind(reason: str) -> str:
    """The category a reason is counted under (`duplicate text of X` -> `duplicate text`)."""
    return reason.split(" of ")[0] if reason.startswith("duplicate") else reason
