"""Loading the model and processor the same way for a hub id and a local folder, with the attention backend chosen."""

from __future__ import annotations

import importlib.util

import torch
from transformers import AutoProcessor, HiggsAudioV2ForConditionalGeneration

from higgs_train.errors import UserError


class ModelLoadError(UserError):
    """The model or processor could not be loaded; the message says what to point `model.name_or_path` at."""


def resolve_attn_implementation(requested: str, device: torch.device) -> str:
    """`auto` picks FlashAttention 2 when it is installed and the device is CUDA, SDPA otherwise."""
    if requested != "auto":
        return requested
    if device.type == "cuda" and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def _explain(name_or_path: str, error: Exception) -> ModelLoadError:
    if name_or_path in ("tiny", "demo"):
        return ModelLoadError(f"cannot load {name_or_path!r}: no such folder or hub id; the built-in test checkpoint "
                              "is spelled builtin:tiny in every tool (the demo data builtin:demo)")
    return ModelLoadError(
        f"cannot load {name_or_path!r} ({type(error).__name__}: {str(error).splitlines()[0]}); if the Hub is out of "
        "reach, download it elsewhere and point at the folder (or builtin:tiny, the built-in test checkpoint)"
    )


def load_processor(name_or_path: str):
    """The checkpoint's processor (text tokenizer, feature extractor and audio tokenizer), frozen."""
    try:
        processor = AutoProcessor.from_pretrained(name_or_path)
    except OSError as error:
        raise _explain(name_or_path, error) from None
    processor.audio_tokenizer.eval().requires_grad_(False)
    return processor


def load_model(name_or_path: str, attn_implementation: str, dtype: torch.dtype, use_text_head: bool, **kwargs):
    """`kwargs` go to `from_pretrained` (a `quantization_config` with its `device_map`)."""
    try:
        return HiggsAudioV2ForConditionalGeneration.from_pretrained(
            name_or_path, attn_implementation=attn_implementation, dtype=dtype, use_text_head=use_text_head, **kwargs
        )
    except OSError as error:
        raise _explain(name_or_path, error) from None


def load_audio_tokenizer(name_or_path: str):
    """The audio tokenizer of a model checkpoint (through its processor) or of a tokenizer checkpoint itself."""
    from transformers import AutoConfig, HiggsAudioV2TokenizerModel

    try:
        if AutoConfig.from_pretrained(name_or_path).model_type == "higgs_audio_v2_tokenizer":
            return HiggsAudioV2TokenizerModel.from_pretrained(name_or_path).eval().requires_grad_(False)
    except OSError as error:
        raise _explain(name_or_path, error) from None
    return load_processor(name_or_path).audio_tokenizer
