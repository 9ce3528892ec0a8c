"""Judges of generated speech that need a model of their own, each named by the user and loaded through
Transformers from the local cache or a folder (nothing is downloaded at test time): an ASR model for the word error
rate against the transcript (`eval.asr_model`, e.g. a Whisper checkpoint), a speaker-embedding model for the
similarity to the reference voice (`eval.speaker_model`, e.g. a WavLM x-vector checkpoint). A judge that cannot be
loaded is skipped with one notice line, and its metric is reported as not measured, never as 0.

The word error rate follows Seed-TTS-eval (`run_wer.py`): punctuation removed (the apostrophe kept), lower-cased
for English, one "word" per character for Chinese, numbers left as written; speaker tags are dropped first.
"""

from __future__ import annotations

import string
import unicodedata
from dataclasses import dataclass

import numpy as np
import torch

from higgs_train.data.audio import TARGET_SAMPLE_RATE, load_audio
from higgs_train.data.tasks.layout import SPEAKER_TAG
from higgs_train.logs import NOTICE, logger

LANGUAGES = ("en", "zh")
_PROBE = (0.1 * np.random.RandomState(0).randn(TARGET_SAMPLE_RATE)).astype(np.float32)  # 1 s of quiet noise


def _notice(key: str, name: str, error: Exception, what: str) -> None:
    logger.log(NOTICE, f"{key}={name} cannot be loaded ({type(error).__name__}: "
                   f"{str(error).splitlines()[0][:200]}); {what} not measured")


def _is_punctuation(char: str) -> bool:
    return char != "'" and (char in string.punctuation or unicodedata.category(char).startswith("P"))


def normalize_for_wer(text: str, language: str = "en") -> str:
    """Text as Seed-TTS-eval scores it: no punctuation but the apostrophe, single spaces, lower case (en), or one
    token per character (zh)."""
    text = "".join(c for c in SPEAKER_TAG.sub(" ", text) if not _is_punctuation(c))
    if language == "zh":
        return " ".join(c for c in text if not c.isspace())
    return " ".join(text.lower().split())


def word_errors(reference: str, hypothesis: str, language: str = "en") -> tuple[int, int]:
    """(substitutions + deletions + insertions, reference words) after `normalize_for_wer`."""
    import jiwer

    truth, heard = normalize_for_wer(reference, language), normalize_for_wer(hypothesis, language)
    words = len(truth.split())
    if not heard:
        return words, words
    if not words:
        return len(heard.split()), 0
    measured = jiwer.process_words(truth, heard)
    return measured.substitutions + measured.deletions + measured.insertions, words


def word_error_rate(reference: str, hypothesis: str, language: str = "en") -> float:
    errors, words = word_errors(reference, hypothesis, language)
    return errors / max(words, 1)


class AsrJudge:
    def __init__(self, pipeline, name: str, language: str = "en"):
        self.pipeline, self.name, self.language = pipeline, name, language

    @classmethod
    def load(cls, name: str, language: str = "en") -> AsrJudge | None:
        try:
            import jiwer  # noqa: F401
            from transformers import pipeline

            judge = cls(pipeline("automatic-speech-recognition", model=name), name, language)
            judge.transcribe(_PROBE)  # a checkpoint of another kind may load, and then fail on its first clip
            return judge
        except Exception as error:  # any failure means: skip this judge, say why, go on
            _notice("eval.asr_model", name, error, "word error rate")
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
            _notice("eval.speaker_model", name, error, "speaker similarity")
            return None

    @torch.no_grad()
    def embed(self, waveform: np.ndarray) -> torch.Tensor:
        rate = self.feature_extractor.sampling_rate
        inputs = self.feature_extractor(load_audio(waveform, rate, TARGET_SAMPLE_RATE), sampling_rate=rate,
                                        return_tensors="pt")
        return self.model(**inputs).embeddings[0]

    def __call__(self, waveform: np.ndarray, reference: np.ndarray) -> float:
        """Cosine similarity of the two voices' embeddings (both 24 kHz)."""
        return float(torch.nn.functional.cosine_similarity(self.embed(waveform), self.embed(reference), dim=0))


@dataclass
class Judges:
    """The model judges of one evaluation (either may be None: its metrics are then not measured)."""

    asr: AsrJudge | None = None
    speaker: SpeakerJudge | None = None

    @classmethod
    def load(cls, eval_cfg) -> Judges:
        language = eval_cfg.get("language", "en")
        return cls(AsrJudge.load(eval_cfg.asr_model, language) if eval_cfg.asr_model else None,
                   SpeakerJudge.load(eval_cfg.speaker_model) if eval_cfg.speaker_model else None)

    def names(self) -> dict[str, str]:
        """What judged, for the record of every report (different ASR models give different WERs)."""
        return {k: j.name for k, j in (("asr", self.asr), ("speaker", self.speaker)) if j is not None}
