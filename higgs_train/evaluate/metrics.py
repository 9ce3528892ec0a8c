"""The metric registry: every sample metric defined once (its name, which way is better, what it needs, how it is
measured), used by periodic evaluation, `higgs-eval`, report.html, the A/B table, preference-pair judging and the
GRPO rewards (`objective.rewards` weighs metrics by these names). A metric's value for one sample is a number or
missing (its judge is not there); its summary over samples is their mean, and a metric may add a corpus-level figure
(WER: all errors over all words). The tables of `higgs-eval`, report.html and utterances.csv list these metrics in
this order, in their own words.

Adding a metric: one `Metric(...)` in `METRICS` (with a `reward` if GRPO may train on it) and its test.
Training-data metrics (`higgs-prep ingest` and `score`) are `CLIP_METRICS`, read from a `Clip`
instead of a generated `Sample`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from higgs_train.data.audio import TARGET_SAMPLE_RATE
from higgs_train.evaluate.clip_metrics import clipping_share, silence_facts, snr_db
from higgs_train.evaluate.judges import EmptyReference, Judges, normalize_for_wer, word_errors
from higgs_train.evaluate.sample_metrics import (
    duration_ratio,
    loop_share,
    silent_share,
    trailing_silence_share,
)


@dataclass
class Sample:
    """What the metrics read of one generated sample."""

    codes: torch.Tensor  # (K, T) generated code frames
    stopped: bool  # it emitted stream-EOS before the token limit
    waveform: np.ndarray | Callable[[], np.ndarray]  # decoded (24 kHz), or how to decode it when a metric listens
    text: str  # what it should say
    expected_frames: float  # its target clip's frames, or its transcript's at an average speaking rate
    frame_rate: float
    silence_db: float = -40.0
    target_codes: torch.Tensor | None = None  # the clip it should reproduce, when there is one
    reference: np.ndarray | None = None  # the voice it should have (24 kHz), when there is one
    language: str = "en"

    @property
    def samples_per_frame(self) -> int:
        return round(TARGET_SAMPLE_RATE / self.frame_rate)

    @functools.cached_property
    def audio(self) -> np.ndarray:
        """The decoded waveform, decoded on first use (GRPO weighing only code metrics never decodes)."""
        return self.waveform() if callable(self.waveform) else self.waveform


@dataclass(frozen=True)
class Metric:
    name: str  # the per-sample value's key
    summary: str  # the key of its mean over samples
    higher_is_better: bool | None  # None: a figure to read, not to rank by
    measure: Callable[[Sample, Judges], dict | None]  # {name: value, ...extra facts}, or None when not measured
    doc: str
    needs: str | None = None  # the setting that brings its judge, said when it is missing
    corpus: Callable[[list[dict]], float | None] | None = None  # a corpus-level figure over the records
    label: str = ""  # its summary in words on pages and charts (default: the summary's key with spaces)
    facts: tuple[str, ...] = ()  # per-sample keys written beside it in utterances.csv
    reward: Callable[[float], float] | None = None  # its value as a GRPO reward in [0, 1] (None: not a reward)

    @property
    def words(self) -> str:
        return self.label or self.summary.replace("_", " ")


def _piecewise(value: float, points: list[tuple[float, float]]) -> float:
    return float(np.interp(value, [x for x, _ in points], [y for _, y in points]))


def _frame_match(sample: Sample, judges: Judges) -> dict | None:
    if sample.target_codes is None:
        return None
    target, codes = sample.target_codes, sample.codes
    shared = min(target.shape[1], codes.shape[1])
    match = (codes[:, :shared] == target[:, :shared]).all(dim=0).sum() / max(target.shape[1], 1)
    return {"frame_match": float(match), "target_frames": int(target.shape[1])}


def _wer(sample: Sample, judges: Judges) -> dict | None:
    if judges.asr is None:
        return None
    heard = judges.asr.transcribe(sample.audio) if len(sample.audio) else ""
    try:
        errors, words = word_errors(sample.text, heard, judges.asr.language)
    except EmptyReference as error:  # no score for it: counted in the summary as wer_unscored
        return {"wer_error": str(error), "transcript": heard}
    return {"wer": errors / words, "wer_errors": errors, "wer_words": words, "transcript": heard}


def _corpus_wer(records: list[dict]) -> float | None:
    measured = [r for r in records if r.get("wer_words") is not None]
    return sum(r["wer_errors"] for r in measured) / max(sum(r["wer_words"] for r in measured), 1) if measured \
        else None


def _similarity(sample: Sample, judges: Judges) -> dict | None:
    if judges.speaker is None or sample.reference is None or not len(sample.audio):
        return None
    return {"speaker_similarity": judges.speaker(sample.audio, sample.reference)}


METRICS = {m.name: m for m in (
    Metric("stopped", "stop_rate", True, lambda s, j: {"stopped": bool(s.stopped)},
           "emitted stream-EOS before the token limit (1 - runaway rate)", reward=float),
    Metric("duration_ratio", "duration_ratio", None,
           lambda s, j: {"duration_ratio": duration_ratio(s.codes.shape[1], s.expected_frames)},
           "generated length / expected length (the target clip's, or the transcript's at eval.chars_per_second)"),
    Metric("duration_error", "duration_error", False,
           lambda s, j: {"duration_error": abs(float(np.log(max(duration_ratio(s.codes.shape[1], s.expected_frames),
                                                                  1e-3))))},
           "|ln duration_ratio|: how far from the expected length, either way",
           reward=lambda error: max(0.0, 1.0 - error / math.log(2))),  # 1 at the expected length, 0 at half or twice
    Metric("silent_share", "silent_share", False,
           lambda s, j: {"silent_share": silent_share(s.audio, s.samples_per_frame, s.silence_db)},
           "share of 40 ms frames below eval.silence_db"),
    Metric("trailing_silence", "trailing_silence", False,
           lambda s, j: {"trailing_silence": trailing_silence_share(s.audio, s.samples_per_frame, s.silence_db)},
           "share of the sample that is silence after its last sound", reward=lambda share: 1.0 - share),
    Metric("loop_share", "loop_share", False, lambda s, j: {"loop_share": loop_share(s.codes)},
           "share of code frames repeating a frame of the 2 s before them (repeated-frame loops)",
           reward=lambda share: 1.0 - share),
    Metric("frame_match", "frame_match", True, _frame_match,
           "share of the target clip's code frames reproduced exactly (when the prompt has a target clip)",
           label="frames matching the target"),
    Metric("wer", "wer", False, _wer, "word error rate against the transcript (Seed-TTS-eval's), the mean over "
           "samples (Seed's average_wer); wer_corpus: all errors over all words; a transcript with no words is not "
           "scored (wer_error, counted as wer_unscored)", needs="eval.asr_model", corpus=_corpus_wer, label="WER",
           facts=("wer_error", "transcript"),
           reward=lambda wer: _piecewise(wer, [(0.0, 1.0), (0.1, 0.5), (0.5, 0.0)])),  # NeMo's piecewise line
    Metric("speaker_similarity", "speaker_similarity", True, _similarity,
           "cosine similarity of the speaker embeddings of the sample and its reference voice",
           needs="eval.speaker_model",
           reward=lambda similarity: _piecewise(similarity, [(0.0, 0.0), (0.6, 0.5), (0.9, 1.0)])),
)}


def measure(sample: Sample, judges: Judges, names: tuple[str, ...] | None = None) -> dict:
    """Every metric this sample can be measured by (or those of `names`): per-sample values and their extra facts."""
    record = {"frames": int(sample.codes.shape[1])}
    for metric in METRICS.values():
        if names is None or metric.name in names:
            record.update(metric.measure(sample, judges) or {})
    return record


def in_words(record: dict) -> list[str]:
    """A sample's measured metrics in words (`loop share 0.02`, ...), in the registry's order, for the pages; whether
    it stopped is said apart."""
    return [f"{m.words} {record[m.name]:.3g}" for m in METRICS.values()
            if record.get(m.name) is not None and not isinstance(record[m.name], bool)]


def not_measured(judges: Judges, setting_prefix: str = "eval.") -> dict[str, str]:
    """Metric -> why it has no value in this evaluation: the judge's setting as the tool at hand spells it
    (`eval.asr_model` in higgs-train, `asr_model` in higgs-eval)."""
    return {m.name: f"not measured (set {setting_prefix}{m.needs.removeprefix('eval.')})" for m in METRICS.values()
            if m.needs and not judges.loaded(m.needs)}


def summarize(records: list[dict]) -> dict[str, float]:
    """Each metric's mean over the records that have it (and its corpus figure); `wer_unscored`: how many records
    have a reference with no words (no WER, in no mean)."""
    summary = {}
    for metric in METRICS.values():
        values = [r[metric.name] for r in records if r.get(metric.name) is not None]
        if values:
            summary[metric.summary] = float(np.mean(values))
        if metric.corpus is not None and (value := metric.corpus(records)) is not None:
            summary[f"{metric.name}_corpus"] = value
    unscored = sum(1 for r in records if r.get("wer_error"))
    if unscored:
        summary["wer_unscored"] = unscored
    return summary


def direction(name: str) -> bool | None:
    """Whether higher is better for a metric's summary (or val_loss / val_accuracy), None when it does not rank."""
    losses = {"val_loss": False, "val_accuracy": True}
    if name in losses:
        return losses[name]
    by_summary = {m.summary: m for m in METRICS.values()} | {f"{m.name}_corpus": m for m in METRICS.values()
                                                            if m.corpus}
    if name not in by_summary:
        raise KeyError(name)
    return by_summary[name].higher_is_better


@dataclass
class Clip:
    """What the data-quality metrics read of one training clip (`higgs-prep ingest` and `higgs-prep score`)."""

    waveform: np.ndarray  # as it will be trained on (24 kHz, loudness-normalised by ingest)
    recorded: np.ndarray | None  # as it was recorded, before any gain: clipping is read here (None: not measured)
    text: str
    asr_text: str | None = None
    asr_confidence: float | None = None
    known_text: str | None = None  # the recording's own text for this clip, when it came with one


def _clip_cer(clip: Clip, judges: Judges) -> dict | None:
    if clip.known_text is None or clip.asr_text is None:
        return None
    import jiwer

    truth, heard = normalize_for_wer(clip.known_text), normalize_for_wer(clip.asr_text)
    return {"cer": float(jiwer.cer(truth, heard)) if truth else float(bool(heard))}


def _speech_rate(clip: Clip, judges: Judges) -> dict | None:
    spoken = "".join(normalize_for_wer(clip.text).split())
    seconds = len(clip.waveform) / TARGET_SAMPLE_RATE - sum(silence_facts(clip.waveform)[k]
                                                           for k in ("leading_silence", "trailing_silence"))
    return {"chars_per_second": len(spoken) / max(seconds, 1e-3)} if spoken else None


# Data-quality metrics of training clips: each has a configurable limit in `higgs-prep ingest/score --limit`.
CLIP_METRICS = {m.name: m for m in (
    Metric("seconds", "seconds", None, lambda c, j: {"seconds": len(c.waveform) / TARGET_SAMPLE_RATE},
           "clip duration in seconds (limits: --min-seconds / --max-seconds)"),
    Metric("snr_db", "snr_db", True, lambda c, j: {"snr_db": snr_db(c.waveform)},
           "estimated signal-to-noise ratio in dB (quietest tenth of 20 ms frames as the noise)"),
    Metric("clipping_share", "clipping_share", False,
           lambda c, j: {"clipping_share": clipping_share(c.recorded)} if c.recorded is not None else None,
           "share of samples at full scale as recorded (over-driven input)"),
    Metric("silent_share", "silent_share", False, lambda c, j: {"silent_share": silence_facts(c.waveform)[
        "silent_share"]}, "share of 20 ms frames 40 dB or more below the clip's loudest"),
    Metric("leading_silence", "leading_silence", False,
           lambda c, j: {"leading_silence": silence_facts(c.waveform)["leading_silence"]},
           "seconds of silence before the first sound"),
    Metric("trailing_silence", "trailing_silence", False,
           lambda c, j: {"trailing_silence": silence_facts(c.waveform)["trailing_silence"]},
           "seconds of silence after the last sound"),
    Metric("chars_per_second", "chars_per_second", None, _speech_rate,
           "speech rate: letters of the text per second of sound (outliers against the run's median are flagged)"),
    Metric("asr_confidence", "asr_confidence", True,
           lambda c, j: {"asr_confidence": c.asr_confidence} if c.asr_confidence is not None else None,
           "the recogniser's mean token probability for its transcript (Whisper)", needs="--asr"),
    Metric("cer", "cer", False, _clip_cer, "character error rate of the ASR transcript against the known text"),
)}


def measure_clip(clip: Clip, judges: Judges | None = None) -> dict:
    """Every data-quality metric this clip can be measured by."""
    record = {}
    for metric in CLIP_METRICS.values():
        record.update(metric.measure(clip, judges or Judges()) or {})
    return record
