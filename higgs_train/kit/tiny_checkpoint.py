"""A tiny, random-weight Higgs Audio V2 checkpoint that stands in for the hub one in tests and the smoke recipe.

Everything is a real Transformers object saved with `save_pretrained`, so loading it exercises exactly the code
path of `eustlb/higgs-v2`; only the sizes differ.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    DacFeatureExtractor,
    GenerationConfig,
    HiggsAudioV2Config,
    HiggsAudioV2ForConditionalGeneration,
    HiggsAudioV2Processor,
    HiggsAudioV2TokenizerConfig,
    HiggsAudioV2TokenizerModel,
    PreTrainedTokenizerFast,
)

SPECIAL_TOKENS = {
    "bos": "<|begin_of_text|>",
    "pad": "<|end_of_text|>",
    "eos": "<|eot_id|>",
    "start_header": "<|start_header_id|>",
    "end_header": "<|end_header_id|>",
    "audio_eos": "<|audio_eos|>",
    "audio_bos": "<|audio_out_bos|>",
    "audio_delay": "<|reserved_special_token_6|>",
    "audio": "<|AUDIO_OUT|>",
    "scene_start": "<|scene_desc_start|>",
    "scene_end": "<|scene_desc_end|>",
}
CHAT_TEMPLATE = Path(__file__).with_name("chat_template.jinja")
AUDIO_TOKENIZER_SUBDIR = "audio_tokenizer"
CODEBOOK_SIZE = 1024


def build_text_tokenizer() -> PreTrainedTokenizerFast:
    """Byte-level BPE over the 256 byte symbols (no merges): encodes any text, deterministically, with no training."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {symbol: index for index, symbol in enumerate(sorted(alphabet))}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=SPECIAL_TOKENS["bos"],
        eos_token=SPECIAL_TOKENS["eos"],
        pad_token=SPECIAL_TOKENS["pad"],
    )
    others = [t for k, t in SPECIAL_TOKENS.items() if k not in ("bos", "eos", "pad")]
    tokenizer.add_special_tokens({"additional_special_tokens": others})
    tokenizer.chat_template = CHAT_TEMPLATE.read_text()
    return tokenizer


def build_audio_tokenizer(seed: int) -> HiggsAudioV2TokenizerModel:
    """Real architecture at toy width: 24 kHz, hop 960 (25 frames/s), 8 quantizers of 1024 codes like the real one."""
    config = HiggsAudioV2TokenizerConfig(
        target_bandwidths=[0.5, 1, 1.5, 2],
        codebook_size=CODEBOOK_SIZE,
        codebook_dim=16,
        acoustic_model_config=dict(
            encoder_hidden_size=8,
            downsampling_ratios=[8, 5, 4, 2, 3],
            upsampling_ratios=[8, 5, 4, 2, 3],
            decoder_hidden_size=64,
            hidden_size=32,
        ),
        semantic_model_config=dict(
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            conv_dim=[32] * 7,
            num_conv_pos_embeddings=16,
            num_conv_pos_embedding_groups=4,
        ),
    )
    torch.manual_seed(seed)
    model = HiggsAudioV2TokenizerModel(config).eval()
    # A fresh RVQ has all-zero codebooks (every frame -> code 0); seeded random entries make codes carry the audio.
    generator = torch.Generator().manual_seed(seed)
    for name, buffer in model.named_buffers():
        if name.endswith("codebook.embed") or name.endswith("codebook.embed_avg"):
            buffer.copy_(torch.randn(buffer.shape, generator=generator))
    return model


def build_model_config(tokenizer: PreTrainedTokenizerFast, num_codebooks: int) -> HiggsAudioV2Config:
    ids = {key: tokenizer.convert_tokens_to_ids(token) for key, token in SPECIAL_TOKENS.items()}
    return HiggsAudioV2Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=4096,
        num_codebooks=num_codebooks,
        codebook_size=CODEBOOK_SIZE + 2,
        audio_stream_bos_id=CODEBOOK_SIZE,
        audio_stream_eos_id=CODEBOOK_SIZE + 1,
        bos_token_id=ids["bos"],
        pad_token_id=ids["pad"],
        eos_token_id=ids["eos"],
        audio_token_id=ids["audio"],
        audio_bos_token_id=ids["audio_bos"],
        audio_delay_token_id=ids["audio_delay"],
    )


def write_tiny_checkpoint(out: str | os.PathLike, seed: int = 0) -> Path:
    """Write model, text tokenizer, audio tokenizer and processor into `out`, loadable with `from_pretrained`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_text_tokenizer()
    audio_tokenizer = build_audio_tokenizer(seed)
    audio_dir = out / AUDIO_TOKENIZER_SUBDIR
    audio_tokenizer.save_pretrained(audio_dir)
    # The processor records its audio tokenizer by name_or_path: point it at the saved sub-folder so
    # `AutoProcessor.from_pretrained(out)` finds it (processor.save_pretrained does not save it itself).
    audio_tokenizer.name_or_path = str(audio_dir.resolve())
    audio_tokenizer.config._name_or_path = str(audio_dir.resolve())
    feature_extractor = DacFeatureExtractor(feature_size=1, sampling_rate=24000, padding_value=0.0, hop_length=960)
    feature_extractor.save_pretrained(audio_dir)
    processor = HiggsAudioV2Processor(
        feature_extractor=feature_extractor,
        tokenizer=tokenizer,
        audio_tokenizer=audio_tokenizer,
        chat_template=tokenizer.chat_template,
        audio_stream_bos_id=CODEBOOK_SIZE,
        audio_stream_eos_id=CODEBOOK_SIZE + 1,
    )
    processor.save_pretrained(out)

    config = build_model_config(tokenizer, audio_tokenizer.config.num_quantizers)
    torch.manual_seed(seed)
    model = HiggsAudioV2ForConditionalGeneration(config, use_text_head=True)
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
        ras_win_len=7,
        ras_win_max_num_repeat=2,
    )
    model.save_pretrained(out)
    return out
