"""Transcribing clips for `higgs-prep ingest`: Whisper through Transformers (a local folder or a hub id in the local
cache; batched; the language given or detected; the confidence kept), or pocketsphinx (`--asr pocketsphinx`), whose
wheel carries an English model: no download and no GPU, but far less accurate (a fallback for English on CPU).

`identity` names the recogniser and its settings, so cached transcripts are reused only by the same recogniser.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from transformers.models.whisper.tokenization_whisper import LANGUAGES

from higgs_train.data.audio import TARGET_SAMPLE_RATE, load_audio
from higgs_train.runtime.errors import UserError

ASR_RATE = 16000


@dataclass
class Transcript:
    text: str
    confidence: float | None  # mean token probability (Whisper); None where the recogniser gives none
    language: str | None


class WhisperTranscriber:
    def __init__(self, name: str, language: str | None, batch_size: int, device: str = "cpu"):
        from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor

        try:
            self.processor = AutoProcessor.from_pretrained(name)
            self.model = AutoModelForSpeechSeq2Seq.from_pretrained(name).to(device).eval()
        except (OSError, ValueError) as error:
            raise UserError(f"--asr {name}: cannot be loaded ({str(error).splitlines()[0][:160]}); give a Whisper "
                            "folder or a hub id in the local cache, or --asr pocketsphinx") from None
        self.language, self.batch_size, self.device = language, batch_size, device
        self.identity = f"whisper:{name}:{language or 'detect'}"
        self.special = set(self.processor.tokenizer.all_special_ids)

    @torch.inference_mode()
    def transcribe(self, clips: list[np.ndarray]) -> list[Transcript]:
        results = []
        for start in range(0, len(clips), self.batch_size):
            batch = [load_audio(clip, ASR_RATE, TARGET_SAMPLE_RATE) for clip in clips[start:start + self.batch_size]]
            features = self.processor.feature_extractor(batch, sampling_rate=ASR_RATE, return_tensors="pt")
            output = self.model.generate(features.input_features.to(self.device), language=self.language,
                                         task="transcribe", return_dict_in_generate=True, output_scores=True)
            scores = self.model.compute_transition_scores(output.sequences, output.scores, normalize_logits=True)
            generated = output.sequences[:, -scores.shape[1]:]
            for row, (tokens, logprobs) in enumerate(zip(generated.tolist(), scores)):
                words = [i for i, token in enumerate(tokens) if token not in self.special]
                probability = float(logprobs[words].mean().exp()) if words else 0.0
                prefix = self.processor.tokenizer.convert_ids_to_tokens(output.sequences[row, :4].tolist())
                language = next((t.strip("<|>") for t in prefix if t.strip("<|>") in LANGUAGES), None)
                text = self.processor.tokenizer.decode(tokens, skip_special_tokens=True).strip()
                results.append(Transcript(text, probability, language or self.language))
        return results


class PocketsphinxTranscriber:
    def __init__(self):
        try:
            from pocketsphinx import Decoder
        except ImportError:
            raise UserError("--asr pocketsphinx needs the pocketsphinx package: pip install pocketsphinx") from None
        self.decoder = Decoder(samprate=ASR_RATE, loglevel="FATAL")
        self.identity = "pocketsphinx:en-us"

    def transcribe(self, clips: list[np.ndarray]) -> list[Transcript]:
        results = []
        for clip in clips:
            samples = np.clip(load_audio(clip, ASR_RATE, TARGET_SAMPLE_RATE) * 32767, -32768, 32767)
            self.decoder.start_utt()
            self.decoder.process_raw(samples.astype(np.int16).tobytes(), full_utt=True)
            self.decoder.end_utt()
            hypothesis = self.decoder.hyp()
            results.append(Transcript(hypothesis.hypstr if hypothesis else "", None, "en"))
        return results


def load_transcriber(spec: str, language: str | None, batch_size: int, device: str = "cpu"):
    """`pocketsphinx`, or a Whisper checkpoint (folder or hub id)."""
    if spec == "pocketsphinx":
        return PocketsphinxTranscriber()
    return WhisperTranscriber(spec, language, batch_size, device)

