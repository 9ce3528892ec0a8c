"""`higgs-export run_dir=DIR [checkpoint=latest|PATH] [merge=true] [out=DIR]`: a run's result in the formats
inference uses. A LoRA run gives its PEFT adapter folder (load it with `PeftModel.from_pretrained` on the base), or
with `merge=true` a merged full checkpoint plus the processor (plain `from_pretrained`); a full fine-tuning run gives
the full checkpoint. The weights come from the run's final save, or from one of its checkpoints. The export is
written under a temporary name and renamed when complete."""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file

from higgs_train import assets, atomic, ownership
from higgs_train.errors import UserError
from higgs_train.key_value_args import parse, run_tool
from higgs_train.logs import logger
from higgs_train.model.loading import load_model, load_processor
from higgs_train.model.peft_setup import apply_peft
from higgs_train.model.precision import load_dtype
from higgs_train.model.quantization import bitsandbytes_config
from higgs_train.train.checkpoint import complete_checkpoints

USAGE = """usage: higgs-export run_dir=DIR [checkpoint=latest|DIR] [merge=true] [out=DIR]

  run_dir     a higgs-train run directory (it holds .hydra/config.yaml)
  checkpoint  null (default): the run's final weights (adapter/ or model/); latest: its newest complete checkpoint;
              or a <run_dir>/checkpoints/step_00000500 folder
  merge       true: fold the LoRA adapter into the base weights and write a full checkpoint + processor
  out         where to write (default <run_dir>/export/adapter or <run_dir>/export/merged)"""
DEFAULTS = {"run_dir": None, "checkpoint": None, "merge": False, "out": None}


class ExportError(UserError):
    """The run or checkpoint cannot be exported as asked; the message says what to give instead."""


def _checkpoint_folder(run_dir: Path, checkpoint: str) -> Path:
    if checkpoint == "latest":
        found = complete_checkpoints(run_dir)
        if not found:
            raise ExportError(f"{run_dir} has no complete checkpoint; export its final weights (no checkpoint=)")
        return found[-1]
    folder = Path(checkpoint)
    if not folder.is_dir():
        raise ExportError(f"checkpoint={checkpoint} does not exist; use checkpoint=latest or a "
                          f"{run_dir}/checkpoints/step_00000500 folder")
    if not (folder / "trainable.safetensors").is_file():
        raise ExportError(f"checkpoint={checkpoint} holds no trainable.safetensors (a DeepSpeed checkpoint or not a "
                          "checkpoint folder); use checkpoint=latest, a checkpoints/step_00000500 folder, or the final "
                          "weights")
    return folder


def _load_base(cfg, for_merge: bool):
    """The base in the dtype the run kept its frozen weights in (fp32, or the 16-bit type). To merge a QLoRA adapter,
    the base is quantized as the run saw it and then dequantized to that dtype, so the merged weights hold exactly the
    base the adapter was trained against."""
    dtype, quantization = load_dtype(cfg), cfg.model.quantization
    base = assets.resolve(cfg.model.name_or_path)
    if not for_merge or quantization == "none":
        return load_model(base, "sdpa", dtype, cfg.model.use_text_head)
    quantized = load_model(base, "sdpa", dtype, cfg.model.use_text_head, device_map={"": "cpu"},
                           quantization_config=bitsandbytes_config(quantization, dtype))
    return quantized.dequantize(dtype=dtype)


def load_trained_model(run_dir: Path, checkpoint: str | None = None, for_merge: bool = False):
    """(the run's trained model on CPU, as training had it, the run's config)."""
    config_file = run_dir / ".hydra" / "config.yaml"
    if not config_file.is_file():
        raise ExportError(f"run_dir={run_dir} is not a higgs-train run directory (no .hydra/config.yaml)")
    # Runs from before these settings existed kept everything in fp32, unquantized.
    cfg = OmegaConf.merge({"model": {"weights_dtype": "fp32", "quantization": "none"}}, OmegaConf.load(config_file))
    full = cfg.peft.type == "none"
    final = run_dir / ("model" if full else "adapter")
    if checkpoint is None:
        if not final.is_dir():
            raise ExportError(f"{final} does not exist (the run did not finish); export a checkpoint with "
                              "checkpoint=latest")
        if full:
            return load_model(str(final), "sdpa", torch.float32, cfg.model.use_text_head), cfg
        from peft import PeftModel

        return PeftModel.from_pretrained(_load_base(cfg, for_merge), final), cfg
    weights = load_file(_checkpoint_folder(run_dir, checkpoint) / "trainable.safetensors")
    model = apply_peft(_load_base(cfg, for_merge), cfg.peft)
    unexpected = model.load_state_dict(weights, strict=False).unexpected_keys
    if unexpected:
        raise ExportError(f"checkpoint={checkpoint} does not fit the run's model and peft settings "
                          f"(e.g. {unexpected[:2]})")
    return model, cfg


def export(run_dir: str | Path, checkpoint: str | None = None, merge: bool = False, out: str | Path | None = None,
) -> Path:
    run_dir = Path(run_dir)
    if out:
        ownership.check_replaceable(out, "export", "out=")  # before the weights load
    model, cfg = load_trained_model(run_dir, checkpoint, for_merge=merge)
    full_checkpoint = merge or cfg.peft.type == "none"
    out = Path(out) if out else run_dir / "export" / ("merged" if full_checkpoint else "adapter")
    ownership.check_replaceable(out, "export", "out=")  # before the work: an earlier export of ours is replaced
    if full_checkpoint and cfg.peft.type != "none":
        model = model.merge_and_unload()  # also puts trained `modules_to_save` copies in place
    with atomic.atomic_output(out) as partial:
        model.save_pretrained(partial)
        if full_checkpoint:
            load_processor(assets.resolve(cfg.model.name_or_path)).save_pretrained(partial)
        ownership.mark(partial, "export", run_dir=str(run_dir), checkpoint=checkpoint, merged=full_checkpoint)
    logger.info(f"wrote {'a full checkpoint' if full_checkpoint else 'a PEFT adapter'} to {out}")
    return out


def main() -> None:
    def body(argv):
        args = parse(argv, DEFAULTS, required=("run_dir",))
        export(args["run_dir"], args["checkpoint"], args["merge"], args["out"])

    run_tool("higgs-export", USAGE, body)


if __name__ == "__main__":
    main()
