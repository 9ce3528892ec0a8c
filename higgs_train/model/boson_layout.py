"""Boson's original checkpoint layout (`HiggsAudioModel` of boson-ai/higgs-audio, which `HiggsAudioServeEngine` and
Boson's vLLM image load), as the inverse of Transformers' `convert_higgs_audio_v2_to_hf.py`.

That script renames three prefixes; the inverse, applied here to every tensor of a merged Transformers checkpoint:
- `model.embed_audio_tokens.embed_audio_tokens.` -> `audio_codebook_embeddings.` (8 x 1026 rows either way: Boson
  counts `audio_codebook_size` 1024 codes and adds its stream BOS/EOS, Transformers' `codebook_size` is 1026);
- `model.embed_tokens.` / `model.layers.` / `model.norm.` -> without `model.`;
- `audio_lm_head.` / `text_lm_head.` -> under `audio_decoder_proj.`.
Tensors the conversion dropped, which Boson's loader does not need from the file: `audio_codebook_weights` (a constant
1/8 per codebook the model makes itself) and the rotary `inv_freq` buffers (recomputed from the config). Boson's
`audio_decoder_proj` always has a text head: a checkpoint without one cannot be written in this layout.
"""

from __future__ import annotations

import re

RENAMES = (  # Transformers key -> Boson key, the inverse of ORIGINAL_TO_CONVERTED_KEY_MAPPING
    (r"^model\.embed_audio_tokens\.embed_audio_tokens\.", "audio_codebook_embeddings."),
    (r"^model\.(embed_tokens|layers|norm)", r"\1"),
    (r"^(audio_lm_head|text_lm_head)\.", r"audio_decoder_proj.\1."),
)
DROPPED_BY_THE_CONVERSION = ("audio_codebook_weights", "rotary_emb.inv_freq", "rotary_emb.original_inv_freq")


class LayoutError(ValueError):
    """The checkpoint cannot be written in Boson's layout; the message says what it lacks."""


def boson_key(key: str) -> str:
    for pattern, replacement in RENAMES:
        renamed = re.sub(pattern, replacement, key)
        if renamed != key:
            return renamed
    raise LayoutError(f"{key} has no place in Boson's layout (the conversion maps embeddings, layers, norm and the "
                      "two heads only)")


def to_boson(state_dict: dict) -> dict:
    """Every tensor of a Transformers checkpoint under its Boson name (each exactly once)."""
    if "text_lm_head.weight" not in state_dict:
        raise LayoutError("the checkpoint has no text_lm_head, and Boson's audio_decoder_proj always has one; "
                          "export a base that carries it (the converted eustlb/higgs-v2 does)")
    renamed = {boson_key(key): tensor for key, tensor in state_dict.items()}
    if len(renamed) != len(state_dict):
        raise LayoutError("two tensors would share one name in Boson's layout")
    return renamed


def transformers4_tokenizer_config(saved: dict) -> dict:
    """`tokenizer_config.json` as transformers 4.x loads it (Boson's stack pins transformers < 4.47): transformers 5
    writes the class `TokenizersBackend`, unknown to 4.x, and the special tokens beyond bos/eos/pad as
    `extra_special_tokens`; 4.x's `PreTrainedTokenizerFast` (the class of Boson's own released tokenizer) reads the
    same tokenizer.json and takes them as `additional_special_tokens`."""
    extra = saved.get("extra_special_tokens") or saved.get("additional_special_tokens") or []
    kept = ("bos_token", "eos_token", "pad_token", "unk_token", "model_max_length", "clean_up_tokenization_spaces")
    return {"tokenizer_class": "PreTrainedTokenizerFast", **{k: saved[k] for k in kept if saved.get(k) is not None},
            "additional_special_tokens": list(extra.values()) if isinstance(extra, dict) else list(extra)}


def boson_config(config, tokenizer, dtype) -> dict:
    """`config.json` of a `higgs_audio` model from a Transformers `HiggsAudioV2Config`: the keys Boson's
    `HiggsAudioConfig`, `HiggsAudioModel` and its CUDA-graph capture read (tests/test_serving.py lists each with its
    source); `torch_dtype` is the dtype the weights are written in (`dtype`), which the capture builds its inputs in."""
    text = config.to_dict()
    rope = text.get("rope_parameters") or {}
    text_config = {
        "model_type": "llama", "vocab_size": config.vocab_size, "hidden_size": config.hidden_size,
        "intermediate_size": config.intermediate_size, "num_hidden_layers": config.num_hidden_layers,
        "num_attention_heads": config.num_attention_heads, "num_key_value_heads": config.num_key_value_heads,
        "head_dim": config.head_dim, "hidden_act": config.hidden_act, "rms_norm_eps": config.rms_norm_eps,
        "max_position_embeddings": config.max_position_embeddings, "attention_bias": config.attention_bias,
        "mlp_bias": config.mlp_bias, "tie_word_embeddings": False, "rope_theta": rope.get("rope_theta"),
        "rope_scaling": {k: v for k, v in rope.items() if k != "rope_theta"} or None,
        "bos_token_id": config.bos_token_id, "eos_token_id": config.eos_token_id, "pad_token_id": config.pad_token_id,
    }
    ids = tokenizer.convert_tokens_to_ids
    return {
        "architectures": ["HiggsAudioModel"], "model_type": "higgs_audio", "text_config": text_config,
        "hidden_size": config.hidden_size, "torch_dtype": str(dtype).removeprefix("torch."),
        "audio_encoder_config": {"model_type": "higgs_audio_encoder"}, "audio_tokenizer_config": None,
        "skip_audio_tower": True, "encode_whisper_embed": False, "encode_audio_in_tokens": True,
        "audio_adapter_type": "dual_ffn", "audio_dual_ffn_layers": list(range(config.num_hidden_layers)),
        "audio_ffn_hidden_size": config.hidden_size, "audio_ffn_intermediate_size": config.intermediate_size,
        "audio_decoder_proj_num_layers": 0, "use_delay_pattern": True, "use_audio_out_embed_projector": False,
        "use_audio_out_self_attention": False, "use_rq_transformer": False,
        "audio_num_codebooks": config.num_codebooks, "audio_codebook_size": config.codebook_size - 2,
        "audio_stream_bos_id": config.audio_stream_bos_id, "audio_stream_eos_id": config.audio_stream_eos_id,
        "audio_out_token": "<|AUDIO_OUT|>", "audio_out_token_idx": config.audio_token_id,
        "audio_out_bos_token": "<|audio_out_bos|>", "audio_out_bos_token_id": config.audio_bos_token_id,
        "audio_eos_token": "<|audio_eos|>", "audio_eos_token_id": ids("<|audio_eos|>"),
        "audio_in_token": "<|AUDIO|>", "audio_in_token_idx": ids("<|AUDIO|>") if "<|AUDIO|>" in tokenizer.get_vocab()
        else 128015, "audio_bos_token": "<|audio_bos|>", "pad_token_id": config.pad_token_id,
    }
