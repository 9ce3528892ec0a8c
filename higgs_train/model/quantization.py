"""QLoRA: the frozen base in 4-bit NF4 (or 8-bit) through bitsandbytes, with PEFT's k-bit training preparation. The
audio and text heads and every embedding stay unquantized: they are small next to the decoder and the codes' quality
depends on them; the audio tokenizer is a separate model and is never quantized either."""

from __future__ import annotations

import torch

NEVER_QUANTIZED = ["audio_lm_head", "text_lm_head", "embed_tokens", "embed_audio_tokens"]


def bitsandbytes_config(kind: str, compute_dtype: torch.dtype):
    """Transformers' `BitsAndBytesConfig` for `model.quantization` (nf4 | int8), or None for `none`."""
    if kind == "none":
        return None
    from transformers import BitsAndBytesConfig

    if kind == "nf4":
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                  bnb_4bit_compute_dtype=compute_dtype, llm_int8_skip_modules=NEVER_QUANTIZED)
    return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=NEVER_QUANTIZED)


def prepare_quantized(model, gradient_checkpointing: bool):
    """PEFT's preparation of a k-bit base for adapter training (frozen base, unquantized weights in fp32, inputs that
    carry gradients through checkpointed layers)."""
    from peft import prepare_model_for_kbit_training

    if next(model.parameters()).device.type == "cpu":
        _skip_empty_inputs(model)
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing,
                                           gradient_checkpointing_kwargs={"use_reentrant": False})


def _skip_empty_inputs(model) -> None:
    """bitsandbytes' fused CPU 4-bit kernel (taken on CPUs with AVX512-BF16) dies with SIGFPE on a 0-row input,
    which the DualFFN gives its audio MLP at every step without audio positions (text-only decoding steps). Such a
    layer returns its empty output without calling the kernel."""
    import bitsandbytes as bnb

    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.forward = _guarded(module, module.forward)


def _guarded(module, forward):
    def guarded(x, *args, **kwargs):
        if x.numel() == 0:
            return x.new_zeros((*x.shape[:-1], module.out_features))
        return forward(x, *args, **kwargs)

    return guarded
