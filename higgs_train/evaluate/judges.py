"""Optional judges of the samples, each a model the user names: an ASR model for the word error rate against the
transcript (`eval.asr_model`), a speaker-verification model for the similarity to the target or reference voice
(`eval.speaker_model`). A judge that cannot be loaded (offline, a wrong id) is skipped with a one-line notice."""

from __future__ import annotations

import re

import numpy as np
import torch

from higgs_train.data.audio import TARGET_SAMPLE_RATE, load_audio
from higgs_train.data.tasks.layout import SPEAKER_TAG
from higgs_train.logs import NOTICE, logger


def _notice(key: str, name: str, error: Exception, what: str) -> None:
    logger.log(NOTICE, f"{key}={name} cannot be loaded ({type(error).__name__}: "
                   f"{str(error).splitlines()[0][:200]}); {what} skipped")


def _words(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s']", " ", SPEAKER_TAG.sub(" ", text).lower()).split())


def word_error_rate(reference: str, hypothesis: str) -> float:
    """WER after lower-casing and dropping punctuation and speaker tags."""
    import jiwer

    return float(jiwer.wer(_words(reference), _words(hypothesis) or "<empty>"))


class AsrJudge:
    def __init__(self, pipeline):
        self.pipeline = pipeline

    @classmethod
    def load(cls, name: str) -> AsrJudge | None:
        try:
            import jiwer  # noqa: F401
            from transformers import pipeline

            return cls(pipeline("automatic-speech-recognition", model=name))
        except Exception as error:  # any failure means: skip this judge, say why, train on
            _notice("eval.asr_model", name, error, "word error rate")
            return None

    def __call__(self, waveform: np.ndarray, text: str) -> float:
        rate = self.pipeline.feature_extractor.sampling_rate
        heard = self.pipeline({"raw": load_audio(waveform, rate, TARGET_SAMPLE_RATE), "sampling_rate": rate})["text"]
        return word_error_rate(text, heard)


class SpeakerJudge:
    def __init__(self, feature_extractor, model):
        self.feature_extractor, self.model = feature_extractor, model.eval()

    @classmethod
    def load(cls, name: str) -> SpeakerJudge | None:
        try:
            from transformers import AutoFeatureExtractor, AutoModelForAudioXVector

            return cls(AutoFeatureExtractor.from_pretrained(name), AutoModelForAudioXVector.from_pretrained(name))
        except Exception as error:  # any failure means: skip this judge, say why, train on
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
