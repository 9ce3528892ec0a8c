"""Random-weight Higgs Audio V2 checkpoints that stand in for the hub one: `tiny` (the test kit and the smoke recipe)
and `real` (the 5.8B architecture's widths, optionally fewer layers, for memory and speed measurements).

Everything is a real Transformers object saved with `save_pretrained`, so loading one exercises exactly the code
path of `eustlb/higgs-v2`; only the sizes (and the text tokenizer, a byte-level stand-in) differ.
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
# The language model's widths; `real` is the hub checkpoint's (5.38B parameters without the text head).
MODEL_PRESETS = {
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=16, max_position_embeddings=4096),
    "real": dict(vocab_size=128256, hidden_size=3072, intermediate_size=8192, num_hidden_layers=28,
                 num_attention_heads=24, num_key_value_heads=8, head_dim=128, max_position_embeddings=8192),
}
# The audio tokenizer: `real` is the released architecture (DAC encoder/decoder at hop 960, HuBERT-base semantic
# branch, 8 RVQ codebooks of 1024 x 64); `tiny` the same layout at toy width.
AUDIO_PRESETS = {
    "tiny": dict(
        codebook_dim=16,
        acoustic_model_config=dict(encoder_hidden_size=8, downsampling_ratios=[8, 5, 4, 2, 3],
                                   upsampling_ratios=[8, 5, 4, 2, 3], decoder_hidden_size=64, hidden_size=32),
        semantic_model_config=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                                   conv_dim=[32] * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4),
    ),
    "real": dict(
        codebook_dim=64,
        acoustic_model_config=dict(encoder_hidden_size=64, downsampling_ratios=[8, 5, 4, 2, 3],
                                   upsampling_ratios=[8, 5, 4, 2, 3], decoder_hidden_size=1024, hidden_size=256),
        semantic_model_config=dict(),
    ),
}
# Saved like the hub checkpoint: the real widths in bf16 (11.5 GB at 28 layers), the tiny kit in fp32.
SAVE_DTYPES = {"tiny": torch.float32, "real": torch.bfloat16}


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


def build_audio_tokenizer(seed: int, preset: str = "tiny") -> HiggsAudioV2TokenizerModel:
    """24 kHz, hop 960 (25 frames/s), 8 quantizers of 1024 codes like the real one, at the preset's width."""
    config = HiggsAudioV2TokenizerConfig(target_bandwidths=[0.5, 1, 1.5, 2], codebook_size=CODEBOOK_SIZE,
                                         **AUDIO_PRESETS[preset])
    torch.manual_seed(seed)
    model = HiggsAudioV2TokenizerModel(config).eval()
    # A fresh RVQ has all-zero codebooks (every frame -> code 0); seeded random entries make codes carry the audio.
    generator = torch.Generator().manual_seed(seed)
    for name, buffer in model.named_buffers():
        if name.endswith("codebook.embed") or name.endswith("codebook.embed_avg"):
            buffer.copy_(torch.randn(buffer.shape, generator=generator))
    return model


def build_model_config(tokenizer: PreTrainedTokenizerFast, num_codebooks: int, preset: str = "tiny",
                       num_layers: int | None = None) -> HiggsAudioV2Config:
    ids = {key: tokenizer.convert_tokens_to_ids(token) for key, token in SPECIAL_TOKENS.items()}
    widths = {"vocab_size": len(tokenizer), **MODEL_PRESETS[preset]}
    if num_layers is not None:
        widths["num_hidden_layers"] = num_layers
    return HiggsAudioV2Config(
        **widths,
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


def write_random_checkpoint(out: str | os.PathLike, preset: str = "tiny", num_layers: int | None = None,
                            seed: int = 0, device: str = "cpu") -> Path:
    """Write model, text tokenizer, audio tokenizer and processor into `out`, loadable with `from_pretrained`.
    `num_layers` overrides the preset's decoder depth; `device` is where the weights are drawn (a GPU is much faster
    for the real widths)."""
    if preset not in MODEL_PRESETS:
        raise ValueError(f"preset={preset!r} is not known; use one of {sorted(MODEL_PRESETS)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_text_tokenizer()
    audio_tokenizer = build_audio_tokenizer(seed, preset)
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

    config = build_model_config(tokenizer, audio_tokenizer.config.num_quantizers, preset, num_layers)
    torch.manual_seed(seed)
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(SAVE_DTYPES[preset])
    try:
        with torch.device(device):
            model = HiggsAudioV2ForConditionalGeneration(config, use_text_head=True)
    finally:
        torch.set_default_dtype(default_dtype)
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
        ras_win_len=7,
        ras_win_max_num_repeat=2,
    )
    model.save_pretrained(out)
    return out
