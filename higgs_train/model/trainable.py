"""The model a run trains, built one way for training and for the dry run: loaded weights in their configured
precision (or, for sizes only, the same architecture on the meta device), quantized for QLoRA, then adapters or
freezing, trainable weights in fp32, and gradient checkpointing."""

from __future__ import annotations

import torch
from omegaconf import DictConfig
from transformers import AutoConfig, HiggsAudioV2ForConditionalGeneration

from higgs_train.model.freezing import apply_freeze
from higgs_train.model.loading import load_model
from higgs_train.model.peft_setup import apply_peft
from higgs_train.model.precision import DTYPES, keep_trainable_in_fp32, load_dtype
from higgs_train.model.quantization import bitsandbytes_config, prepare_quantized


def build_trainable_model(cfg: DictConfig, model_path: str, attn_implementation: str,
                          device: torch.device | None = None, on_meta: bool = False):
    """`device`: where a quantized base is loaded (bitsandbytes quantizes as it places the weights); `on_meta`: no
    weight is read or allocated, but every parameter (the text head included) is there to count."""
    dtype = load_dtype(cfg)
    quantization = None if on_meta else bitsandbytes_config(cfg.model.quantization, DTYPES[cfg.trainer.precision])
    if on_meta:
        with torch.device("meta"):
            model = HiggsAudioV2ForConditionalGeneration(AutoConfig.from_pretrained(model_path),
                                                         use_text_head=cfg.model.use_text_head)
    elif quantization is not None:
        model = load_model(model_path, attn_implementation, dtype, cfg.model.use_text_head,
                           quantization_config=quantization, device_map={"": device or torch.device("cpu")})
        model = prepare_quantized(model, cfg.model.gradient_checkpointing)
    else:
        model = load_model(model_path, attn_implementation, dtype, use_text_head=cfg.model.use_text_head)
    model = keep_trainable_in_fp32(apply_freeze(apply_peft(model, cfg.peft), cfg.freeze.trainable))
    if cfg.model.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model
