"""A tiny random-weight Whisper (byte-level vocabulary, one layer each side) saved as a checkpoint folder, so the
Transformers Whisper code path of `higgs-prep ingest` runs in tests and benchmarks with nothing downloaded. What it
hears is noise; how fast and how it is called is real."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import (
    GenerationConfig,
    WhisperConfig,
    WhisperFeatureExtractor,
    WhisperForConditionalGeneration,
    WhisperProcessor,
    WhisperTokenizer,
)
from transformers.convert_slow_tokenizer import bytes_to_unicode

SPECIALS = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|fr|>", "<|translate|>", "<|transcribe|>",
            "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>"]


def write_tiny_whisper(out: str | Path, seed: int = 0, max_new_tokens: int = 24) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    vocab = {char: index for index, char in enumerate(bytes_to_unicode().values())}
    vocab.update({token: len(vocab) + i for i, token in enumerate(SPECIALS)})
    (out / "vocab.json").write_text(json.dumps(vocab))
    (out / "merges.txt").write_text("#version: 0.2\n")
    end = SPECIALS[0]
    tokenizer = WhisperTokenizer(str(out / "vocab.json"), str(out / "merges.txt"), unk_token=end, bos_token=end,
                                 eos_token=end, pad_token=end)
    tokenizer.add_special_tokens({"additional_special_tokens": SPECIALS[1:]})
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIALS}
    WhisperProcessor(feature_extractor=WhisperFeatureExtractor(feature_size=80), tokenizer=tokenizer).save_pretrained(
        out)
    torch.manual_seed(seed)
    config = WhisperConfig(vocab_size=len(vocab), num_mel_bins=80, d_model=32, encoder_layers=1, decoder_layers=1,
                           encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
                           decoder_ffn_dim=64, max_source_positions=1500, max_target_positions=64,
                           pad_token_id=ids[end], bos_token_id=ids[end], eos_token_id=ids[end],
                           decoder_start_token_id=ids["<|startoftranscript|>"])
    model = WhisperForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=ids["<|startoftranscript|>"], eos_token_id=ids[end], pad_token_id=ids[end],
        bos_token_id=ids[end], lang_to_id={"<|en|>": ids["<|en|>"], "<|fr|>": ids["<|fr|>"]},
        task_to_id={"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]},
        no_timestamps_token_id=ids["<|notimestamps|>"], is_multilingual=True, max_new_tokens=max_new_tokens,
        suppress_tokens=[ids[t] for t in SPECIALS[4:]])  # so the random model writes text, not markers
    model.save_pretrained(out)
    return out
