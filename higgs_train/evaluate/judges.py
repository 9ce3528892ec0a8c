"""Judges of generated speech that need a model of their own, each named by the user and loaded through
Transformers from the local cache or a folder (nothing is downloaded at test time): an ASR model for the word error
rate against the transcript (`eval.asr_model`, e.g. a Whisper checkpoint), a speaker-embedding model for the
similarity to the reference voice (`eval.speaker_model`, e.g. a WavLM x-vector checkpoint). A judge that cannot be
loaded is skipped with one notice line, and its metric is reported as not measured, never as 0.

The word error rate is Seed-TTS-eval's (`run_wer.py` with jiwer's default word split; tests/data/seed_tts_eval holds
its own outputs for hand-written cases): a Chinese transcript is converted to simplified characters (zhconv) first;
the characters of its punctuation list (zhon's Chinese punctuation, the ideographic space among them, and ASCII
punctuation, the apostrophe kept) are deleted, other symbols stay; English is lower-cased, Chinese split into
characters; runs of two or more whitespace characters become one space and words are what lies between spaces (a
single tab or no-break space joins its neighbours into one word, as in Seed's scoring); numbers stay as written.
One deliberate difference: our multi-speaker references' speaker tags (`[SPEAKER0]`) are dropped first. A reference
with no words left is not scored (Seed's code refuses it): `EmptyReference`, reported per utterance and counted.
"""

from __future__ import annotations

import functools
import re
import string
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from higgs_train.data.audio import TARGET_SAMPLE_RATE, load_audio
from higgs_train.runtime.logs import NOTICE, logger

LANGUAGES = ("en", "zh")


class JudgeSetting(NamedTuple):
    field: str  # the judge's field of `Judges`
    example: str  # a checkpoint to name in help and error messages
    measures: str  # what it measures, in words


# Each judge's setting (a metric's `needs`): higgs-train's `eval.*`, higgs-eval's and higgs-prep pairs' options and
# GRPO's checks read it here. This module imports no torch, so the tools read it before any heavy library loads.
JUDGE_SETTINGS = {"eval.asr_model": JudgeSetting("asr", "openai/whisper-large-v3", "word error rate"),
                  "eval.speaker_model": JudgeSetting("speaker", "microsoft/wavlm-base-plus-sv", "speaker similarity")}
_PROBE = (0.1 * np.random.RandomState(0).randn(TARGET_SAMPLE_RATE)).astype(np.float32)  # 1 s of quiet noise


def _notice(key: str, name: str, error: Exception, what: str) -> None:
    logger.log(NOTICE, f"{key}={name} cannot be loaded ({type(error).__name__}: "
                   f"{str(error).splitlines()[0][:200]}); {what} not measured")


class EmptyReference(ValueError):
    """The reference has no words once normalised: no word error rate exists for it (Seed-TTS-eval refuses it)."""


@functools.cache
def _seed_punctuation() -> dict:
    """Seed-TTS-eval's `punctuation_all` less the apostrophe, as a deletion table."""
    from zhon.hanzi import punctuation

    return str.maketrans("", "", (punctuation + string.punctuation).replace("'", ""))


def normalize_for_wer(text: str, language: str = "en") -> str:
    """The words Seed-TTS-eval scores, joined by single spaces (speaker tags dropped first)."""
    from higgs_train.data.tasks.layout import SPEAKER_TAG

    text = SPEAKER_TAG.sub(" ", text).translate(_seed_punctuation())
    text = " ".join(text) if language == "zh" else text.lower()
    return " ".join(word for word in re.sub(r"\s\s+", " ", text).strip().split(" ") if word)


def word_errors(reference: str, hypothesis: str, language: str = "en") -> tuple[int, int]:
    """(substitutions + deletions + insertions, reference words), as Seed-TTS-eval counts them; raises
    `EmptyReference` when the reference has no words."""
    import jiwer

    if language == "zh":
        import zhconv

        hypothesis = zhconv.convert(hypothesis, "zh-cn")
    truth, heard = normalize_for_wer(reference, language), normalize_for_wer(hypothesis, language)
    if not truth:
        raise EmptyReference(f"the reference {reference!r} has no words after Seed-TTS-eval's normalisation")
    measured = jiwer.process_words(truth, heard)
    return measured.substitutions + measured.deletions + measured.insertions, len(truth.split(" "))


def word_error_rate(reference: str, hypothesis: str, language: str = "en") -> float:
    errors, words = word_errors(reference, hypothesis, language)
    return errors / words


class AsrJudge:
    def __init__(self, pipeline, name: str, language: str = "en"):
        self.pipeline, self.name, self.language = pipeline, name, language

    @classmethod
    def load(cls, name: str, language: str = "en") -> AsrJudge | None:
        try:
            import jiwer  # noqa: F401
            import zhconv  # noqa: F401
            import zhon  # noqa: F401
            from transformers import pipeline

            judge = cls(pipeline("automatic-speech-recognition", model=name), name, language)
            judge.transcribe(_PROBE)  # a checkpoint of another kind may load, and then fail on its first clip
            return judge
        except Exception as error:  # any failure means: skip this judge, say why, go on
            _notice("eval.asr_model", name, error, JUDGE_SETTINGS["eval.asr_model"].measures)
            return None

    def transcribe(self, waveform: np.ndarray) -> str:
        rate = self.pipeline.feature_extractor.sampling_rate
        return self.pipeline({"raw": load_audio(waveform, rate, TARGET_SAMPLE_RATE), "sampling_rate": rate})["text"]


class SpeakerJudge:
    def __init__(self, feature_extractor, model, name: str):
        self.feature_extractor, self.model, self.name = feature_extractor, model.eval(), name

    @classmethod
    def load(cls, name: str) -> SpeakerJudge | None:
        try:
            from transformers import AutoFeatureExtractor, AutoModelForAudioXVector

            judge = cls(AutoFeatureExtractor.from_pretrained(name), AutoModelForAudioXVector.from_pretrained(name),
                        name)
            judge.embed(_PROBE)  # a checkpoint of another kind may load, and then fail on its first clip
            return judge
        except Exception as error:  # any failure means: skip this judge, say why, go on
            _notice("eval.speaker_model", name, error, JUDGE_SETTINGS["eval.speaker_model"].measures)
            return None

    def embed(self, waveform: np.ndarray):
        import torch

        rate = self.feature_extractor.sampling_rate
        inputs = self.feature_extractor(load_audio(waveform, rate, TARGET_SAMPLE_RATE), sampling_rate=rate,
                                        return_tensors="pt")
        with torch.no_grad():
            return self.model(**inputs).embeddings[0]

    def __call__(self, waveform: np.ndarray, reference: np.ndarray) -> float:
        """Cosine similarity of the two voices' embeddings (both 24 kHz)."""
        import torch

        return float(torch.nn.functional.cosine_similarity(self.embed(waveform), self.embed(reference), dim=0))


@dataclass
class Judges:
    """The model judges of one evaluation (either may be None: its metrics are then not measured)."""

    asr: AsrJudge | None = None
    speaker: SpeakerJudge | None = None

    @classmethod
    def load(cls, eval_cfg) -> Judges:
        return cls(AsrJudge.load(eval_cfg.asr_model, eval_cfg.language) if eval_cfg.asr_model else None,
                   SpeakerJudge.load(eval_cfg.speaker_model) if eval_cfg.speaker_model else None)

    def loaded(self, setting: str) -> bool:
        """Whether the judge a setting names (`eval.asr_model`, ...) is here."""
        return getattr(self, JUDGE_SETTINGS[setting].field) is not None

    def names(self) -> dict[str, str]:
        """What judged, for the record of every report (different ASR models give different WERs)."""
        return {s.field: judge.name for s in JUDGE_SETTINGS.values() if (judge := getattr(self, s.field)) is not None}
