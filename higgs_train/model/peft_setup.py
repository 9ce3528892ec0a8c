"""What is trained: LoRA / DoRA adapters through PEFT, or the full model."""

from __future__ import annotations

from peft import LoraConfig, get_peft_model

from higgs_train.runtime.errors import UserError


class PeftConfigError(UserError):
    """A `peft.*` setting that cannot apply to this model."""


def _matches(module_name: str, target: str) -> bool:
    return module_name == target or module_name.endswith("." + target)


def apply_peft(model, peft_cfg):
    """Wrap `model` in adapters as `peft_cfg` says (type none|lora); every target must match some module."""
    if peft_cfg.type == "none":
        return model
    if peft_cfg.type != "lora":
        raise PeftConfigError(f"peft.type={peft_cfg.type!r} is not known; use 'none' or 'lora'")
    names = [name for name, _ in model.named_modules()]
    targets = list(peft_cfg.target_modules)
    unmatched = [t for t in targets if not any(_matches(name, t) for name in names)]
    if unmatched:
        raise PeftConfigError(
            f"peft.target_modules {unmatched} match no module of the model; names look like "
            "q_proj, o_proj, mlp.gate_proj, audio_mlp.up_proj"
        )
    config = LoraConfig(
        r=peft_cfg.r,
        lora_alpha=peft_cfg.alpha,
        lora_dropout=peft_cfg.dropout,
        target_modules=targets,
        use_dora=peft_cfg.use_dora,
        use_rslora=peft_cfg.use_rslora,
        modules_to_save=list(peft_cfg.modules_to_save) or None,
        bias="none",
    )
    return get_peft_model(model, config)
