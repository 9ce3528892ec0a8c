"""Freeze presets for full fine-tuning (`freeze=`): train only the parameters whose names contain one of the listed
module names (e.g. the audio DualFFN path and the audio head), keep the rest as loaded."""

from __future__ import annotations

from higgs_train.runtime.errors import UserError


class FreezeConfigError(UserError):
    """A `freeze.trainable` entry that names no module of the model."""


def _matches(parameter_name: str, module: str) -> bool:
    return f".{module}." in f".{parameter_name}"


def apply_freeze(model, trainable: list[str] | None):
    """Leave `model` fully trainable (`trainable` None), or train only the parameters under the named modules."""
    if trainable is None:
        return model
    names = [name for name, _ in model.named_parameters()]
    unmatched = [module for module in trainable if not any(_matches(name, module) for name in names)]
    if unmatched:
        raise FreezeConfigError(f"freeze.trainable {unmatched} match no parameter of the model; names look like "
                                "audio_mlp, audio_lm_head, embed_audio_tokens, self_attn")
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(any(_matches(name, module) for module in trainable))
    return model
