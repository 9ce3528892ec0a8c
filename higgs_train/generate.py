"""`higgs-generate model=... [adapter=...] text=... out=FILE`, or `prompts=FILE.jsonl out_dir=DIR` for a batch:
speech from a base, fine-tuned, merged or adapted checkpoint for the four workflows (see `evaluate/prompts.py`)."""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import OmegaConf

from higgs_train.config_files import CONFIG_DIR
from higgs_train.data.audio_codes import attach_codes
from higgs_train.data.collator import ConversationCollator
from higgs_train.evaluate.prompts import load_prompts, prompt_conversation
from higgs_train.evaluate.samples import write_samples
from higgs_train.key_value_args import ArgumentError, parse, run_tool
from higgs_train.logs import logger
from higgs_train.model.loading import load_for_inference

USAGE = """usage: higgs-generate model=NAME_OR_DIR [adapter=DIR] text="..." [scene="..."] [speakers=[d0,d1]]
                      [reference_audio=FILE|[F0,F1] reference_text="..."] [out=out.wav]
       higgs-generate model=NAME_OR_DIR [adapter=DIR] prompts=FILE.jsonl [out_dir=DIR]

  smart voice        text (+ scene, a description of the recording) (+ speakers=[the voice's description],
                     as speakers.json described it in training)
  multi-speaker      text with [SPEAKER0] ... lines + speakers=[description0,description1]
  voice cloning      text + reference_audio=clip.wav + reference_text="what the clip says"
  multi-speaker clone text with [SPEAKERn] lines + reference_audio=[speaker0.wav,speaker1.wav]
  prompts            a JSONL of such objects (plus "id", the wav's name), generated batch_size at a time

  generation: max_new_tokens, do_sample, temperature, ras_win_len, ras_win_max_num_repeat, batch_size, seed,
  device (auto|cpu|cuda); defaults from eval/default.yaml in the packaged configs"""
GENERATION_KEYS = ("max_new_tokens", "do_sample", "temperature", "ras_win_len", "ras_win_max_num_repeat",
                   "batch_size", "seed", "chars_per_second", "silence_db")


def _defaults() -> dict:
    eval_defaults = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "eval" / "default.yaml"))
    return {"model": None, "adapter": None, "text": None, "scene": None, "speakers": None, "reference_audio": None,
            "reference_text": None, "out": "out.wav", "prompts": None, "out_dir": "samples",
            "device": "auto", **{key: eval_defaults[key] for key in GENERATION_KEYS}}


def generate(args: dict) -> list[dict]:
    """Writes one wav per prompt; returns the sample records (path, frames, stopped, duration ratio...)."""
    if args["prompts"]:
        conversations, out_dir = load_prompts(args["prompts"]), Path(args["out_dir"])
    else:
        if not args["text"]:
            raise ArgumentError("give text=\"...\" (or prompts=FILE.jsonl)")
        out = Path(args["out"])
        fields = {k: args[k] for k in ("text", "scene", "speakers", "reference_audio", "reference_text") if args[k]}
        conversations, out_dir = [prompt_conversation({"id": out.stem, **fields}, "command line")], out.parent
    device = torch.device(args["device"] if args["device"] != "auto" else "cuda" if torch.cuda.is_available()
                          else "cpu")
    model, processor = load_for_inference(args["model"], args["adapter"], device)
    attach_codes(conversations, processor.audio_tokenizer, show_progress=False)
    collator = ConversationCollator(processor.tokenizer, model.config)
    eval_cfg = OmegaConf.create({key: args[key] for key in GENERATION_KEYS})
    records, _ = write_samples(model, processor.audio_tokenizer, collator, conversations, eval_cfg, out_dir)
    for record in records:
        seconds = record["frames"] / processor.audio_tokenizer.config.frame_rate
        logger.info(f"{record['path']}: {seconds:.2f} s, "
            f"{'stopped' if record['stopped'] else 'did not stop within max_new_tokens'}")
    return records


def main() -> None:
    run_tool("higgs-generate", USAGE, lambda argv: generate(parse(argv, _defaults(), required=("model",),
                                                                          lists=("speakers", "reference_audio"))))


if __name__ == "__main__":
    main()
