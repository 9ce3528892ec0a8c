"""The model a run trains, built one way for training and for the dry run: loaded weights (or, for sizes only, the
same architecture on the meta device), then adapters or freezing, then gradient checkpointing."""

from __future__ import annotations

import torch
from omegaconf import DictConfig
from transformers import AutoConfig, HiggsAudioV2ForConditionalGeneration

from higgs_train.model.freezing import apply_freeze
from higgs_train.model.loading import load_model
from higgs_train.model.peft_setup import apply_peft


def build_trainable_model(cfg: DictConfig, model_path: str, attn_implementation: str, on_meta: bool = False):
    """`on_meta`: no weight is read or allocated, but every parameter (the text head included) is there to count."""
    if on_meta:
        with torch.device("meta"):
            model = HiggsAudioV2ForConditionalGeneration(AutoConfig.from_pretrained(model_path),
                                                         use_text_head=cfg.model.use_text_head)
    else:
        model = load_model(model_path, attn_implementation, torch.float32, use_text_head=cfg.model.use_text_head)
    model = apply_freeze(apply_peft(model, cfg.peft), cfg.freeze.trainable)
    if cfg.model.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model
