"""`higgs-export run_dir=DIR [checkpoint=latest|best|PATH] [merge=true] [format=transformers|boson] [out=DIR]`: a
run's result in the formats inference and serving use.

- A LoRA run gives its PEFT adapter folder (`PeftModel.from_pretrained` on the base: Transformers only; no vLLM build
  serves Higgs adapters), or with `merge=true` a merged full checkpoint plus the processor (plain `from_pretrained`:
  Transformers, vllm-omni). A full fine-tuning run gives the full checkpoint.
- `format=boson` writes the merged weights in Boson's original layout (`HiggsAudioServeEngine`, Boson's vLLM image):
  the inverse of Transformers' conversion (`model/boson_layout.py`), its `higgs_audio` config, the text tokenizer
  in transformers 4.x's form (Boson pins < 4.47), and the audio tokenizer beside it.
- A merged export loads with its sources gone: a base whose processor names its audio tokenizer by a local path gets
  a copy of it in `audio_tokenizer/`, named relatively (`model.loading.load_processor` reads it from the folder).
- Every export carries `generation_config.json`: the checkpoint's stop and pad tokens, its repetition-aware
  sampling (window 7, 2 repeats), and a token limit from the run's longest training clip (1.5x, plus the delays).
- `voice_presets=true` adds `voice_presets/` (Boson's `--voice-presets-dir`): per speaker of the run's data, one
  clip (the nearest to 6 s) and its transcript, in `config.json` as name -> {transcript, audio_file}.
The weights come from the run's final save, its best evaluation (`best/`), or one of its checkpoints. The export is
written under a temporary name and renamed when complete; a refused export writes nothing.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from higgs_train.builtins import assets
from higgs_train.commands.model_card import write_model_card
from higgs_train.runtime import atomic, ownership
from higgs_train.runtime.errors import UserError
from higgs_train.runtime.key_value_args import ArgumentError, hide_bitsandbytes, parse, run_tool
from higgs_train.runtime.logs import NOTICE, logger
from higgs_train.runtime.run_lock import hold_output

USAGE = """usage: higgs-export run_dir=DIR [checkpoint=latest|best|DIR] [merge=true] [format=transformers|boson]
                    [voice_presets=true] [out=DIR]

  run_dir        a higgs-train run directory (it holds .hydra/config.yaml)
  checkpoint     null (default): the run's final weights (adapter/ or model/); best: its best evaluation (best/);
                 latest: its newest complete checkpoint; or a <run_dir>/checkpoints/step_00000500 folder
  merge          true: fold the LoRA adapter into the base weights and write a full checkpoint + processor
  format         transformers (default): HiggsAudioV2ForConditionalGeneration's layout; boson: Boson's original
                 layout for HiggsAudioServeEngine and bosonai/higgs-audio-vllm (merged weights, implies merge)
  voice_presets  true: also voice_presets/ (one clip and transcript per speaker of the run's data)
  out            where to write (default <run_dir>/export/adapter, export/merged or export/boson)

  Which engine loads what: Transformers: adapter or merged; vllm-omni: merged (either layout; it serves no
  adapters); Boson's vLLM image and HiggsAudioServeEngine: format=boson."""
DEFAULTS = {"run_dir": None, "checkpoint": None, "merge": False, "format": "transformers", "voice_presets": False,
            "out": None}
FORMATS = ("transformers", "boson")
PRESET_SECONDS = 6.0  # the reference length a voice preset's clip is chosen nearest to


class ExportError(UserError):
    """The run or checkpoint cannot be exported as asked; the message says what to give instead."""


def _checkpoint_folder(run_dir: Path, checkpoint: str) -> Path:
    from higgs_train.train.checkpoint import complete_checkpoints, damage

    if checkpoint == "latest":
        found = complete_checkpoints(run_dir)
        if not found:
            raise ExportError(f"{run_dir} has no complete checkpoint; export its final weights (no checkpoint=)")
    folder = found[-1] if checkpoint == "latest" else Path(checkpoint)
    if not folder.is_dir():
        raise ExportError(f"checkpoint={checkpoint} does not exist; use checkpoint=latest or a "
                          f"{run_dir}/checkpoints/step_00000500 folder")
    if not (folder / "trainable.safetensors").is_file():
        raise ExportError(f"checkpoint={checkpoint} holds no trainable.safetensors (a DeepSpeed checkpoint or not a "
                          "checkpoint folder); use checkpoint=latest, a checkpoints/step_00000500 folder, or the final "
                          "weights")
    problem = damage(folder)
    if problem:
        raise ExportError(f"checkpoint={folder} is damaged ({problem}); export another one (checkpoint=latest "
                          "takes the newest, the final weights need no checkpoint=)")
    return folder


def _load_base(cfg, for_merge: bool):
    """The base in the dtype the run kept its frozen weights in (fp32, or the 16-bit type). To merge a QLoRA adapter,
    the base is quantized as the run saw it and then dequantized to that dtype, so the merged weights hold exactly the
    base the adapter was trained against."""
    from higgs_train.model.loading import load_model
    from higgs_train.model.precision import load_dtype
    from higgs_train.model.quantization import bitsandbytes_config

    dtype, quantization = load_dtype(cfg), cfg.model.quantization
    base = assets.resolve(cfg.model.name_or_path)
    if not for_merge or quantization == "none":
        return load_model(base, "sdpa", dtype, cfg.model.use_text_head)
    quantized = load_model(base, "sdpa", dtype, cfg.model.use_text_head, device_map={"": "cpu"},
                           quantization_config=bitsandbytes_config(quantization, dtype))
    return quantized.dequantize(dtype=dtype)


def load_trained_model(run_dir: Path, checkpoint: str | None = None, for_merge: bool = False):
    """(the run's trained model on CPU, as training had it, the run's config)."""
    import torch
    from omegaconf import OmegaConf
    from safetensors.torch import load_file

    from higgs_train.model.loading import load_model
    from higgs_train.model.peft_setup import apply_peft

    config_file = run_dir / ".hydra" / "config.yaml"
    if not config_file.is_file():
        raise ExportError(f"run_dir={run_dir} is not a higgs-train run directory (no .hydra/config.yaml)")
    # Runs from before these settings existed kept everything in fp32, unquantized.
    cfg = OmegaConf.merge({"model": {"weights_dtype": "fp32", "quantization": "none"}}, OmegaConf.load(config_file))
    full = cfg.peft.type == "none"
    final = run_dir / ("model" if full else "adapter")
    if checkpoint == "best":
        final = run_dir / "best"
        if not final.is_dir():
            raise ExportError(f"{final} does not exist (no evaluation measured eval.best_metric); export the final "
                              "weights (no checkpoint=) or checkpoint=latest")
        checkpoint = None
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
           format: str = "transformers", voice_presets: bool = False) -> Path:
    if format not in FORMATS:
        raise ExportError(f"format={format!r} is not known; use one of {list(FORMATS)}")
    run_dir = Path(run_dir)
    if out:
        ownership.check_replaceable(out, "export", "out=")  # before the weights load
    merge = merge or format == "boson"
    model, cfg = load_trained_model(run_dir, checkpoint, for_merge=merge)
    full_checkpoint = merge or cfg.peft.type == "none"
    kind = "boson" if format == "boson" else "merged" if full_checkpoint else "adapter"
    out = Path(out) if out else run_dir / "export" / kind
    with hold_output(out, "out="):  # one export at a time into one folder
        ownership.check_replaceable(out, "export", "out=")  # before the work: an earlier export of ours is replaced
        _say_what_is_replaced(out, checkpoint)
        if full_checkpoint and cfg.peft.type != "none":
            model = model.merge_and_unload()  # also puts trained `modules_to_save` copies in place
        with atomic.atomic_output(out) as partial:
            processor = _write_weights(model, cfg, partial, format, full_checkpoint)
            generation_config(model.config, run_dir).save_pretrained(partial)
            if voice_presets:
                write_voice_presets(cfg, partial / "voice_presets")
            write_model_card(partial, cfg, run_dir, kind, exported_step(run_dir, checkpoint), out)
            ownership.mark(partial, "export", record_files=True, run_dir=str(run_dir), checkpoint=checkpoint,
                           merged=full_checkpoint, format=format)
    del processor
    what = {"boson": "merged weights in Boson's layout", "merged": "a full checkpoint",
            "adapter": "a PEFT adapter"}[kind]
    logger.info(f"wrote {what} to {out}" + (f" (voice presets in {out / 'voice_presets'})" if voice_presets else ""))
    return out


def _say_what_is_replaced(out: Path, checkpoint: str | None) -> None:
    """An earlier export in `out` is replaced (it is ours), and the log says which weights it held and which it gets."""
    try:
        before = json.loads((out / ownership.MARKER).read_text()).get("checkpoint")
    except (OSError, ValueError, AttributeError):
        return
    logger.log(NOTICE, f"replacing the export in {out} (checkpoint={before or 'final'}) with checkpoint="
                       f"{checkpoint or 'final'}; give out=DIR to keep both")


def exported_step(run_dir: Path, checkpoint: str | None) -> int | None:
    """The step of the exported weights: best/'s, a checkpoint folder's; None for the final weights."""
    if checkpoint == "best":
        return json.loads((run_dir / "best" / "best.json").read_text())["step"]
    if checkpoint == "latest":
        from higgs_train.train.checkpoint import complete_checkpoints

        checkpoint = str(complete_checkpoints(run_dir)[-1])
    name = Path(checkpoint).name if checkpoint else ""
    return int(name.removeprefix("step_")) if name.startswith("step_") and name[5:].isdigit() else None


def _write_weights(model, cfg, folder: Path, format: str, full_checkpoint: bool):
    from higgs_train.model.loading import load_processor

    processor = load_processor(assets.resolve(cfg.model.name_or_path)) if full_checkpoint else None
    if format == "transformers":
        model.save_pretrained(folder)
        if processor is not None:
            processor.save_pretrained(folder)
            _bundle_audio_tokenizer(processor, folder)
        return processor
    from safetensors.torch import save_file

    from higgs_train.model.boson_layout import (
        DROPPED_BY_THE_CONVERSION,
        LayoutError,
        boson_config,
        to_boson,
        transformers4_tokenizer_config,
    )

    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    if "text_lm_head.weight" not in state:  # the run did not train a text head: the base's, in the merged dtype
        state["text_lm_head.weight"] = _base_tensor(cfg, "text_lm_head.weight").to(model.dtype)
    try:
        renamed = to_boson(state)
    except LayoutError as error:
        raise ExportError(f"format=boson: {error}") from None
    folder.mkdir(parents=True, exist_ok=True)
    save_file(renamed, folder / "model.safetensors", metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps(boson_config(model.config, processor.tokenizer, model.dtype),
                                                   indent=2))
    processor.tokenizer.save_pretrained(folder)
    tokenizer_config = folder / "tokenizer_config.json"
    tokenizer_config.write_text(json.dumps(transformers4_tokenizer_config(json.loads(tokenizer_config.read_text())),
                                           indent=2))
    processor.audio_tokenizer.save_pretrained(folder / "audio_tokenizer")
    (folder / "boson_layout.json").write_text(json.dumps({
        "tensors": len(renamed), "dropped_by_transformers_conversion": list(DROPPED_BY_THE_CONVERSION),
        "audio_tokenizer": "audio_tokenizer/ is the Transformers HiggsAudioV2TokenizerModel (fine-tuning never "
                           "changes it); Boson's load_higgs_audio_tokenizer reads its own format: give it "
                           "bosonai/higgs-audio-v2-tokenizer (--audio-tokenizer-type)"}, indent=2))
    return processor


def _bundle_audio_tokenizer(processor, folder: Path) -> None:
    """A processor names its audio tokenizer by where it was loaded from. A hub id loads anywhere the hub (or its
    cache) does; a local folder's absolute path exists on no other machine, so the export keeps its own copy in
    audio_tokenizer/ and names it so (`load_processor` reads that name from the export's folder)."""
    from higgs_train.model.loading import BUNDLED_AUDIO_TOKENIZER

    if not Path(processor.audio_tokenizer.name_or_path).is_dir():
        return
    processor.audio_tokenizer.save_pretrained(folder / BUNDLED_AUDIO_TOKENIZER)
    config_file = folder / "processor_config.json"
    config = json.loads(config_file.read_text())
    config["audio_tokenizer"]["audio_tokenizer_name_or_path"] = BUNDLED_AUDIO_TOKENIZER
    config_file.write_text(json.dumps(config, indent=2) + "\n")


def _base_tensor(cfg, name: str):
    from safetensors import safe_open

    folder = Path(assets.resolve(cfg.model.name_or_path))
    for file in sorted(folder.glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as handle:
            if name in handle.keys():
                return handle.get_tensor(name)
    raise ExportError(f"format=boson needs {name}, which {folder} does not hold")


def generation_config(model_config, run_dir: Path):
    """The generation settings that make the export behave: the checkpoint's stop, pad and bos tokens, repetition-aware
    sampling as the checkpoint ships it, and a token limit of 1.5x the run's longest training clip (+ the delays)."""
    from transformers import GenerationConfig

    summary = run_dir / "run_summary.json"
    longest = json.loads(summary.read_text()).get("longest_clip_frames") if summary.is_file() else None
    limit = math.ceil(1.5 * longest) + model_config.num_codebooks + 1 if longest else 500
    return GenerationConfig(bos_token_id=model_config.bos_token_id, eos_token_id=model_config.eos_token_id,
                            pad_token_id=model_config.pad_token_id, max_new_tokens=limit, do_sample=True,
                            temperature=0.7, ras_win_len=7, ras_win_max_num_repeat=2)


def write_voice_presets(cfg, folder: Path) -> Path:
    """One clip per speaker of the run's data (the nearest to 6 s) and its transcript, as Boson's voice presets."""
    import shutil

    from higgs_train.data.audio import audio_length
    from higgs_train.data.conversations import load_rows
    from higgs_train.data.tasks.layout import last_user_text, spoken_clip

    if not cfg.data.path:
        raise ExportError("voice_presets=true reads the speakers of the run's data.path, and this run has none")
    chosen: dict[str, tuple[float, str, str]] = {}
    for row in load_rows(assets.resolve(cfg.data.path)):
        clip = spoken_clip(row["messages"]).get("path")
        if row.get("speaker") is None or clip is None:
            continue
        rate, frames = audio_length(clip)
        distance = abs(frames / rate - PRESET_SECONDS)
        if row["speaker"] not in chosen or distance < chosen[row["speaker"]][0]:
            chosen[row["speaker"]] = (distance, clip, last_user_text(row["messages"]))
    if not chosen:
        raise ExportError("voice_presets=true: the run's data names no speaker")
    folder.mkdir(parents=True)
    presets = {}
    for speaker, (_, clip, transcript) in sorted(chosen.items()):
        name = f"{speaker}{Path(clip).suffix}"
        shutil.copyfile(clip, folder / name)
        presets[speaker] = {"transcript": transcript, "audio_file": name}
    (folder / "config.json").write_text(json.dumps(presets, indent=2, ensure_ascii=False))
    return folder


def main() -> None:
    def check(argv):
        args = parse(argv, DEFAULTS, required=("run_dir",))
        if args["format"] not in FORMATS:
            raise ArgumentError(f"format={args['format']!r} is not known; use one of {list(FORMATS)}")
        return args

    run_tool("higgs-export", USAGE, lambda args: export(**args), check)


def console() -> None:
    """The `higgs-export` command: bitsandbytes stays hidden unless a QLoRA run's merge needs it (its base is
    quantized as training saw it before it is dequantized)."""
    import sys

    import yaml

    run_dir = next((a.partition("=")[2] for a in sys.argv[1:] if a.startswith("run_dir=")), None)
    config = Path(run_dir or ".") / ".hydra" / "config.yaml"
    model = (yaml.safe_load(config.read_text()) or {}).get("model", {}) if config.is_file() else {}
    if model.get("quantization", "none") == "none":
        hide_bitsandbytes()
    main()


if __name__ == "__main__":
    console()
