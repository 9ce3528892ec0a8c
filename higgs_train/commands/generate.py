"""`higgs-generate model=... [adapter=...] text=... [id=NAME] out=DIR`, or `list=FILE.jsonl out=DIR` for a batch:
speech from a base, fine-tuned, merged or adapted checkpoint for the four workflows (see `evaluate/prompts.py`).
Arguments are checked before any heavy library loads."""

from __future__ import annotations

from pathlib import Path

from higgs_train.commands.tool_settings import check_tool_settings
from higgs_train.config.generation import key_value_defaults
from higgs_train.runtime.key_value_args import ArgumentError, hide_bitsandbytes, parse, run_tool
from higgs_train.runtime.progress import quiet_progress

USAGE = """usage: higgs-generate model=NAME_OR_DIR [adapter=DIR] text="..." [scene="..."] [speakers="d0|d1"]
                      [reference_audio=FILE|[F0,F1] reference_text="..."] [id=speech] [out=DIR]
       higgs-generate model=NAME_OR_DIR [adapter=DIR] list=FILE.jsonl [out=DIR]

  out                the folder the wavs go to (default samples): <out>/<id>.wav, id=speech for one text

  smart voice        text (+ scene, a description of the recording) (+ speakers="the voice's description",
                     as speakers.json described it in training)
  multi-speaker      text with [SPEAKER0] ... lines + speakers="description 0|description 1" (one per speaker,
                     separated by |; quote it: descriptions hold spaces and commas)
  voice cloning      text + reference_audio=clip.wav + reference_text="what the clip says"
  multi-speaker clone text with [SPEAKERn] lines + reference_audio=[speaker0.wav,speaker1.wav]
  list               a JSONL of such objects (plus "id", the wav's name), generated batch_size at a time

  generation: max_new_tokens, do_sample, temperature, ras_win_len, ras_win_max_num_repeat, batch_size, seed,
  trim_silence (true: cut trailing silence), duration_cap (e.g. 2.0: at most twice the text's expected length),
  device (auto|cpu|cuda); defaults, ranges and help: the eval.* keys of `higgs-train --help`"""
GENERATION_KEYS = ("max_new_tokens", "do_sample", "temperature", "ras_win_len", "ras_win_max_num_repeat",
                   "batch_size", "seed", "chars_per_second", "silence_db", "trim_silence", "duration_cap")


GENERATION_DEFAULTS, GENERATION_TYPES = key_value_defaults(GENERATION_KEYS)


def _defaults() -> dict:
    return {"model": None, "adapter": None, "text": None, "scene": None, "speakers": None, "reference_audio": None,
            "reference_text": None, "id": "speech", "out": "samples", "list": None,
            "device": "auto", **GENERATION_DEFAULTS}


def speaker_descriptions(value: str | None) -> list[str] | None:
    """`speakers="feminine, calm|masculine, deep"`: one description per speaker, separated by `|`. The bracketed
    list form is refused: `[feminine, calm]` could be one description or two."""
    if value is None:
        return None
    if value.startswith("["):
        inner = value.strip("[]")
        raise ArgumentError(f"speakers={value} is ambiguous (one description with a comma, or one per speaker?); "
                            f"write speakers=\"{inner}\" for one speaker, or speakers=\"{inner.replace(', ', '|')}\" "
                            "for one description per speaker (separated by |)")
    return [part.strip() for part in value.split("|")]


def check(argv: list[str]) -> dict:
    args = parse(argv, _defaults(), required=("model",), lists=("reference_audio",), types=GENERATION_TYPES)
    args["speakers"] = speaker_descriptions(args["speakers"])
    if not args["list"] and not args["text"]:
        raise ArgumentError("give text=\"...\" (or list=FILE.jsonl)")
    check_tool_settings(args, GENERATION_KEYS)
    check_outputs(args)
    return args


def check_outputs(args: dict) -> None:
    """The prompts read, and the wavs to write checked against them and against the user's files, before any weight
    loads (`args["conversations"]` then holds what `synthesize` generates into `args["out"]`)."""
    from higgs_train.evaluate.prompts import load_prompts, prompt_conversation
    from higgs_train.evaluate.sample_files import check_overwritable, sample_file_name

    out = Path(args["out"])
    if out.suffix.lower() == ".wav":
        raise ArgumentError(f"out={out} is the folder the wavs go to; give out={out.parent} id={out.stem} for "
                            f"{out}")
    if args["list"]:
        conversations, inputs = load_prompts(args["list"]), [Path(args["list"])]
    else:
        name = str(args["id"] or "speech")
        if sample_file_name(name) != f"{name}.wav":
            raise ArgumentError(f"id={name} names the wav <out>/<id>.wav and must need no changing; e.g. "
                                f"id={sample_file_name(name).removesuffix('.wav')}")
        fields = {k: args[k] for k in ("text", "scene", "speakers", "reference_audio", "reference_text") if args[k]}
        conversations, inputs = [prompt_conversation({"id": name, **fields}, "command line")], []
    inputs += [Path(item["path"]) for c in conversations for m in c["messages"] for item in m["content"]
               if item["type"] == "audio" and "path" in item]
    check_overwritable([out / sample_file_name(c["id"]) for c in conversations], inputs, "out=")
    args["conversations"] = conversations


def generate(args: dict) -> list[dict]:
    """Writes one wav per prompt, says what each is; returns the sample records (path, frames, stopped, ...)."""
    from higgs_train.runtime.logs import logger

    records, _ = synthesize(args)
    for record in records:
        said = "stopped" if record["stopped"] else "did not stop within max_new_tokens"
        if "capped_s" in record:
            said = f"capped at {record['capped_s']:.2f} s (duration_cap={args['duration_cap']} x the text's length)"
        if "trimmed_s" in record:
            said += f"; trimmed {record['trimmed_s']:.2f} s of trailing silence"
        logger.info(f"{record['path']}: {record['seconds']:.2f} s, {said}")
    return records


def synthesize(args: dict) -> tuple[list[dict], list]:
    """(the sample records, the 24 kHz waveforms), one wav written per prompt."""
    import torch

    from higgs_train.builtins import assets
    from higgs_train.data.audio_codes import attach_codes
    from higgs_train.data.collator import ConversationCollator
    from higgs_train.evaluate.samples import write_samples
    from higgs_train.model.loading import load_for_inference

    if "conversations" not in args:  # called as a library (higgs_train.commands.api.speak), not through `check`
        check_tool_settings(args, GENERATION_KEYS)
        check_outputs(args)
    conversations, out_dir = args["conversations"], Path(args["out"])
    device = torch.device(args["device"] if args["device"] != "auto" else "cuda" if torch.cuda.is_available()
                          else "cpu")
    model, processor = load_for_inference(assets.resolve(args["model"]), args["adapter"], device)
    with quiet_progress():
        attach_codes(conversations, processor.audio_tokenizer)
    collator = ConversationCollator(processor.tokenizer, model.config)
    settings = check_tool_settings(args, GENERATION_KEYS)
    return write_samples(model, processor.audio_tokenizer, collator, conversations, settings, out_dir)


def main() -> None:
    run_tool("higgs-generate", USAGE, generate, check)


def console() -> None:
    """The `higgs-generate` command (generation quantizes nothing)."""
    hide_bitsandbytes()
    main()


if __name__ == "__main__":
    console()
