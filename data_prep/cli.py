"""`higgs-prep`: offline data and checkpoint preparation."""

from __future__ import annotations

import argparse
import json
import os
import sys

from data_prep.sources import FORMATS
from higgs_train.errors import UserError, environment_fault
from higgs_train.logs import log_to_console

DESCRIPTION = """Prepare data and checkpoints for higgs-train. Typical flow:
  higgs-prep convert ljspeech --input LJSpeech-1.1 --output data/lj     # checked 24 kHz clips + conversations
  higgs-prep encode --input data/lj --model eustlb/higgs-v2             # audio codes cached once
  higgs-train recipe=voice_clone_lora data.path=data/lj"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="higgs-prep", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    convert = commands.add_parser(
        "convert", help="turn a speech dataset into checked 24 kHz mono clips + a conversation dataset",
        description="Reads FORMAT: ljspeech (metadata.csv id|text|normalized, wavs/; ONE speaker, named after the "
                    "folder: for several voices use audiofolder, hf or jsonl with a speaker), audiofolder (clips "
                    "beside metadata.csv or metadata.jsonl with file_name, text/transcription, optional speaker), hf "
                    "(a datasets folder with an Audio column: save_to_disk output or a local dataset), jsonl "
                    "(conversation rows: ours, or Higgs ChatML with audio_url). A speakers.json beside the input "
                    "(speaker -> description) makes other speakers bad rows. Writes OUTPUT/ with a datasets dataset, "
                    "clips/, rejected.jsonl (row, reason) and report.json; OUTPUT appears only when complete.")
    convert.add_argument("format", choices=FORMATS)
    convert.add_argument("--input", required=True, help="the source folder (or .jsonl file)")
    convert.add_argument("--output", required=True, help="the dataset folder to write (use it as data.path)")
    convert.add_argument("--on-bad-row", choices=("skip", "fail"), default="skip",
                         help="skip: report bad rows in rejected.jsonl and go on (default); fail: stop at the first")
    convert.add_argument("--min-seconds", type=float, default=0.3, help="shorter clips are bad rows (default 0.3)")
    convert.add_argument("--max-seconds", type=float, default=30.0, help="longer clips are bad rows (default 30)")
    convert.add_argument("--split", default="train", help="split to read from a DatasetDict (hf; default train)")
    convert.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it already holds files")

    encode = commands.add_parser(
        "encode", help="encode every clip of a dataset with the audio tokenizer once, into a resumable code cache",
        description="Stores (8, T) codes as Arrow shards in INPUT/codes/<tokenizer fingerprint>/ (beside a JSONL "
                    "file: in its folder). Re-running after an interrupt encodes only what is missing; another "
                    "tokenizer gets another folder. Training reads the cache by itself. Many processes: `torchrun "
                    "--nproc_per_node N -m data_prep.cli encode ...` (or accelerate launch; several nodes on a shared "
                    "file system): each takes every N-th clip and writes its own shards.")
    encode.add_argument("--input", required=True, help="a higgs-prep convert folder or a conversation JSONL")
    encode.add_argument("--model", required=True, help="model or audio-tokenizer checkpoint (hub id or folder)")
    encode.add_argument("--batch-size", type=int, default=8, help="clips of identical length encoded together")
    encode.add_argument("--shard-size", type=int, default=256, help="clips per committed shard")
    encode.add_argument("--device", default="cpu", help="torch device for the tokenizer (cpu, cuda, cuda:1, ...); "
                        "cuda under a launcher: each process its LOCAL_RANK's GPU")

    demo = commands.add_parser("demo", help="speak a small two-voice demo dataset with espeak-ng (24 kHz wav + JSONL)")
    demo.add_argument("--out", required=True, help="output folder (gets clips/, train.jsonl, speakers.json)")
    tiny = commands.add_parser("tiny-checkpoint", help="write a tiny random-weight Higgs Audio V2 checkpoint "
                               "(random-checkpoint --preset tiny)")
    tiny.add_argument("--out", required=True, help="output folder, loadable with from_pretrained")
    tiny.add_argument("--seed", type=int, default=0, help="seed of the random weights (same seed, same files)")
    real = commands.add_parser(
        "random-checkpoint", help="write a random-weight checkpoint of the tiny kit's or the real model's widths",
        description="--preset real: the 5.8B model's widths (hidden 3072, 24/8 heads, intermediate 8192, 128,256 "
                    "text vocabulary, DualFFN in every layer) and the real audio tokenizer architecture, random "
                    "weights in bf16, with the tiny kit's byte-level text tokenizer; for memory and speed "
                    "measurements, not for listening. --preset tiny: the test kit.")
    real.add_argument("--out", required=True, help="output folder, loadable with from_pretrained")
    real.add_argument("--preset", choices=("tiny", "real"), default="real")
    real.add_argument("--num-layers", type=int, default=None, help="decoder layers (default: the preset's; real 28)")
    real.add_argument("--seed", type=int, default=0, help="seed of the random weights (same seed, same files)")
    real.add_argument("--device", default="cpu", help="where the weights are drawn (cuda is much faster at 28 layers)")
    return parser


def _run(args: argparse.Namespace) -> None:
    if args.command == "convert":
        from data_prep.convert import convert

        report = convert(args.format, args.input, args.output, args.on_bad_row, args.min_seconds, args.max_seconds,
                         args.split, args.overwrite)
        print(json.dumps(report, indent=2))
        if report["rejected"]:
            print(f"higgs-prep: {report['rejected']} rows rejected, listed in {args.output}/rejected.jsonl")
    elif args.command == "encode":
        from data_prep.encode import encode_dataset
        from higgs_train import assets
        from higgs_train.model.loading import load_audio_tokenizer

        device = args.device
        if device == "cuda" and "LOCAL_RANK" in os.environ:  # under a launcher: each process its own GPU
            device = f"cuda:{os.environ['LOCAL_RANK']}"
        tokenizer = load_audio_tokenizer(assets.resolve(args.model)).to(device)
        report = encode_dataset(assets.resolve(args.input), tokenizer, args.batch_size, args.shard_size)
        print(json.dumps(report, indent=2))
    elif args.command == "demo":
        from higgs_train.kit.demo_data import write_demo_dataset

        print(write_demo_dataset(args.out) / "train.jsonl")
    elif args.command == "tiny-checkpoint":
        from higgs_train.kit.random_checkpoint import write_random_checkpoint

        print(write_random_checkpoint(args.out, "tiny", seed=args.seed))
    else:
        from higgs_train.kit.random_checkpoint import write_random_checkpoint

        print(write_random_checkpoint(args.out, args.preset, args.num_layers, args.seed, args.device))


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    log_to_console("higgs-prep")
    try:
        _run(args)
    except (UserError, FileNotFoundError, ValueError) as error:
        print(f"higgs-prep: error: {error}", file=sys.stderr)
        sys.exit(2)
    except OSError as error:
        line = environment_fault(error, "free space there, or write to another folder (--output / --out; the code "
                                        "cache lives beside --input)")
        if line is None:
            raise
        print(f"higgs-prep: error: {line}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
