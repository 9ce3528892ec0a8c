"""`higgs-prep`: offline data and checkpoint preparation."""

from __future__ import annotations

import argparse
import os
import sys

from data_prep.sources import FORMATS
from higgs_train.evaluate.judges import JUDGE_SETTINGS
from higgs_train.runtime.errors import UserError, environment_fault
from higgs_train.runtime.logs import log_to_console
from higgs_train.runtime.renamed import renamed_spelling

DESCRIPTION = """Prepare data and checkpoints for higgs-train. Typical flow:
  higgs-prep convert ljspeech --data LJSpeech-1.1 --out data/lj     # checked 24 kHz clips + conversations
  higgs-prep ingest --data recordings/ --out data/lj                # (or: raw recordings -> sliced, transcribed)
  higgs-prep encode --data data/lj --model eustlb/higgs-v2          # audio codes cached once
  higgs-train recipe=voice_clone_lora data.path=data/lj"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="higgs-prep", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    convert = commands.add_parser(
        "convert", help="turn a speech dataset into checked 24 kHz mono clips + a conversation dataset",
        description="Reads FORMAT: ljspeech (metadata.csv id|text|normalized, wavs/; ONE speaker, named after the "
                    "folder: for several voices use audiofolder, hf or jsonl with a speaker), audiofolder (clips "
                    "beside metadata.csv or metadata.jsonl with file_name, text/transcription, optional speaker), "
                    "libritts (clips at any depth, each with its transcript beside it in NAME.normalized.txt, NAME.txt "
                    "or NAME.lab: LibriTTS and forced-alignment corpora; the speaker is the first folder under the "
                    "input), hf "
                    "(a datasets folder with an Audio column: save_to_disk output or a local dataset), jsonl "
                    "(conversation rows: ours, or Higgs ChatML with audio_url). A speakers.json beside the input "
                    "(speaker -> description) makes other speakers bad rows. Writes OUT/ with a datasets dataset, "
                    "clips/, rejected.jsonl (row, reason) and report.json; OUT appears only when complete.")
    convert.add_argument("format", choices=FORMATS)
    convert.add_argument("--data", required=True, help="the source folder (or .jsonl file)")
    convert.add_argument("--out", required=True, help="the dataset folder to write (use it as data.path)")
    convert.add_argument("--on-bad-row", choices=("skip", "fail"), default="skip",
                         help="skip: report bad rows in rejected.jsonl and go on (default); fail: stop at the first")
    convert.add_argument("--min-seconds", type=float, default=0.3, help="shorter clips are bad rows (default 0.3)")
    convert.add_argument("--max-seconds", type=float, default=30.0, help="longer clips are bad rows (default 30)")
    convert.add_argument("--split", default="train", help="split to read from a DatasetDict (hf; default train)")
    convert.add_argument("--overwrite", action="store_true", help="replace OUT if it already holds files")

    encode = commands.add_parser(
        "encode", help="encode every clip of a dataset with the audio tokenizer once, into a resumable code cache",
        description="Stores (8, T) codes as Arrow shards in DATA/codes/<tokenizer fingerprint>/ (beside a JSONL "
                    "file: in its folder). Re-running after an interrupt encodes only what is missing; another "
                    "tokenizer gets another folder. Training reads the cache by itself. Many processes: `torchrun "
                    "--nproc_per_node N -m data_prep.cli encode ...` (or accelerate launch; several nodes on a shared "
                    "file system): each takes every N-th clip and writes its own shards.")
    encode.add_argument("--data", required=True, help="a higgs-prep convert folder or a conversation JSONL")
    encode.add_argument("--model", required=True, help="model or audio-tokenizer checkpoint (hub id or folder)")
    encode.add_argument("--batch-size", type=int, default=8, help="clips of identical length encoded together")
    encode.add_argument("--shard-size", type=int, default=256, help="clips per committed shard")
    encode.add_argument("--device", default="cpu", help="torch device for the tokenizer (cpu, cuda, cuda:1, ...); "
                        "cuda under a launcher: each process its LOCAL_RANK's GPU")

    ingest = commands.add_parser(
        "ingest", help="raw recordings of any length -> sliced, transcribed, scored clips in convert's format",
        description="Each recording (a folder, searched recursively, or a list file; any container the project "
                    "decodes) is decoded to 24 kHz mono in blocks, cut into clips at pauses by silero-vad, each clip "
                    "normalised to --target-lufs, transcribed (--asr: a Whisper folder or hub id in the local "
                    "cache, or pocketsphinx, English, CPU) and scored; a NAME.txt beside NAME.wav is its known text "
                    "(an audiobook chapter): each clip then gets the span of it that its transcript matches. "
                    "Speaker: --speaker, else the first subfolder, else the folder's name. Every clip is kept or "
                    "rejected with its reasons (rejected/ keeps them listenable; see report.html). Resumable and "
                    "content-keyed in OUT.work (or --work): a re-run transcribes nothing twice. Many processes: "
                    "`torchrun --nproc_per_node N -m data_prep.cli ingest ...`: each takes every N-th recording.")
    source = ingest.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="a folder of recordings")
    source.add_argument("--list", help="a text file listing recordings, one path a line")
    ingest.add_argument("--out", required=True, help="the dataset folder to write (use it as data.path)")
    ingest.add_argument("--work", default=None, help="where resumable work is kept (default OUT.work)")
    ingest.add_argument("--speaker", default=None, help="one speaker name for every recording")
    _scoring_arguments(ingest, asr_default="openai/whisper-large-v3-turbo")
    ingest.add_argument("--pad-seconds", type=float, default=0.1, help="context kept around the speech (default "
                        "0.1; at most half the pause to the next clip)")
    ingest.add_argument("--min-pause", type=float, default=0.3, help="shorter pauses never end a clip (default 0.3)")
    ingest.add_argument("--target-lufs", type=float, default=-23.0, help="each clip's loudness (default -23 LUFS)")
    ingest.add_argument("--peak-dbfs", type=float, default=-1.0, help="the peak ceiling of the gain (default -1)")
    ingest.add_argument("--speaker-model", default=None, help="speaker-embedding checkpoint (e.g. a local "
                        "microsoft/wavlm-base-plus-sv): scores each clip's distance from its speaker's centroid")
    ingest.add_argument("--overwrite", action="store_true", help="replace OUT if an earlier run wrote it")

    score = commands.add_parser(
        "score", help="the ingest quality scores and filtering on a dataset convert wrote",
        description="Writes OUT: the kept rows (clips copied), rejects under rejected/, scores.jsonl, "
                    "rejected.jsonl, report.json and report.html. --asr adds each clip's ASR confidence and CER "
                    "against its transcript. The input is only read.")
    score.add_argument("--data", required=True, help="a higgs-prep convert (or ingest) folder")
    score.add_argument("--out", required=True, help="the filtered dataset folder to write")
    _scoring_arguments(score, asr_default=None)
    score.add_argument("--overwrite", action="store_true", help="replace OUT if an earlier run wrote it")

    pairs = commands.add_parser(
        "pairs", help="preference pairs for objective=dpo from the model's own judged samples",
        description="Samples --samples-per-prompt answers per prompt of --data (its --task conversations) from --model "
                    "(+ --adapter), judges each (stop, duration, trailing silence, loops; WER / speaker similarity "
                    "with --asr-model / --speaker-model) and keeps at most one chosen/rejected pair per prompt by "
                    "--rule (see data_prep/judged_pairs.py). Candidates are cached under the data's code cache: an "
                    "interrupted run goes on, a repeated one samples nothing. Writes OUT (use it as data.pairs).")
    pairs.add_argument("--model", required=True, help="the model being tuned (a hub id or folder, a merged export)")
    pairs.add_argument("--adapter", default=None, help="a PEFT adapter on --model (e.g. an SFT run's export)")
    pairs.add_argument("--data", required=True, help="a conversation JSONL or a higgs-prep convert folder")
    pairs.add_argument("--task", default="smart_voice", help="how its rows become prompts (default smart_voice)")
    pairs.add_argument("--out", required=True, help="the pairs folder to write")
    pairs.add_argument("--samples-per-prompt", type=int, default=6, help="candidates sampled per prompt (default 6)")
    pairs.add_argument("--temperature", type=float, default=0.8, help="sampling temperature (default 0.8)")
    pairs.add_argument("--max-new-tokens", type=int, default=500, help="the token limit a candidate may run to")
    pairs.add_argument("--ras-win-len", type=int, default=7, help="repetition-aware sampling window; 0 turns it off")
    pairs.add_argument("--seed", type=int, default=0)
    pairs.add_argument("--with-greedy", action="store_true", help="one of the candidates is the greedy answer (what "
                       "higgs-eval and greedy inference give), so the runaway they meet can be the rejected one")
    pairs.add_argument("--limit", type=int, default=0, help="the first N prompts only")
    pairs.add_argument("--rule", default="hard-then-soft", help="hard-then-soft (default) or pareto")
    pairs.add_argument("--duration-band", type=float, nargs=2, default=(0.8, 1.25), metavar=("LOW", "HIGH"),
                       help="duration ratios a candidate must fall in (default 0.8 1.25)")
    pairs.add_argument("--max-loop-share", type=float, default=0.2, help="hard judge on repeated-frame loops")
    pairs.add_argument("--max-trailing-silence", type=float, default=0.3, help="hard judge on trailing silence")
    pairs.add_argument("--max-chosen-wer", type=float, default=0.1, help="a chosen answer's WER at most (measured)")
    for setting, judge in JUDGE_SETTINGS.items():  # --asr-model, --speaker-model
        pairs.add_argument(f"--{setting.removeprefix('eval.').replace('_', '-')}", default=None,
                           help=f"the {judge.measures} judge (e.g. a local {judge.example})")
    pairs.add_argument("--language", default="en", choices=("en", "zh"), help="how WER tokenizes")
    pairs.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1, ...)")

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


def _scoring_arguments(command, asr_default: str | None) -> None:
    from data_prep.quality import DEFAULT_LIMITS

    command.add_argument("--min-seconds", type=float, default=1.0, help="shorter clips are rejected (default 1)")
    command.add_argument("--max-seconds", type=float, default=20.0, help="longer speech is cut at its quietest "
                         "point; longer clips are rejected (default 20; Whisper reads 30 s at most)")
    command.add_argument("--asr", default=asr_default, help="pocketsphinx, or a Whisper checkpoint (folder or hub "
                         f"id in the local cache); default: {asr_default or 'no transcription'}")
    command.add_argument("--language", default=None, help="the speech's language for Whisper (default: detected)")
    command.add_argument("--batch-size", type=int, default=8, help="clips per Whisper batch")
    command.add_argument("--limit", action="append", default=[], metavar="SCORE=VALUE",
                         help="change a score's limit; defaults: " + ", ".join(f"{k}={v:g}" for k, v in
                                                                             DEFAULT_LIMITS.items()))


def _settings(args: argparse.Namespace):
    from data_prep.ingest import Settings
    from data_prep.quality import parse_limits

    return Settings(min_seconds=args.min_seconds, max_seconds=args.max_seconds,
                    pad=getattr(args, "pad_seconds", 0.1), min_pause=getattr(args, "min_pause", 0.3),
                    target_lufs=getattr(args, "target_lufs", -23.0), peak_dbfs=getattr(args, "peak_dbfs", -1.0),
                    asr=args.asr, language=args.language, batch_size=args.batch_size,
                    speaker_model=getattr(args, "speaker_model", None), limits=parse_limits(args.limit))


def _print_outcome(report: dict, output: str) -> None:
    why = ", ".join(f"{n} {reason}" for reason, n in report["rejected_by_reason"].items()) or "none"
    bad = f"; {report['bad_inputs']} bad inputs ({', '.join(report['bad_inputs_by_reason'])})" \
        if report["bad_inputs"] else ""
    print(f"higgs-prep: kept {report['kept']} clips ({report['audio_seconds'] / 3600:.2f} h), rejected "
          f"{report['rejected']} ({why}){bad}; listenable in {output}/rejected, listed in {output}/rejected.jsonl\n"
          f"higgs-prep: the dataset is in {output}; look at {output}/report.html to choose the limits\n"
          f"higgs-prep: next: higgs-prep encode --data {output} --model MODEL (the checkpoint to train)")


def _run(args: argparse.Namespace) -> None:
    if args.command == "convert":
        from data_prep.convert import convert

        report = convert(args.format, args.data, args.out, args.on_bad_row, args.min_seconds, args.max_seconds,
                         args.split, args.overwrite)
        total = report["kept"] + report["rejected"]
        why = ", ".join(f"{n} {reason}" for reason, n in report["rejected_by_reason"].items())
        rejected = f"; rejected {report['rejected']} ({why}), listed in {args.out}/rejected.jsonl" \
            if report["rejected"] else "; none rejected"
        audio = f"{report['audio_seconds']:.1f} s of audio"
        print(f"higgs-prep: kept {report['kept']} of {total} rows ({audio}){rejected}\n"
              f"higgs-prep: the dataset is in {args.out} (numbers in {args.out}/report.json)\n"
              f"higgs-prep: next: higgs-prep encode --data {args.out} --model MODEL (the checkpoint to train)")
    elif args.command == "ingest":
        from data_prep.ingest import ingest

        counts = ingest(args.data or args.list, args.out, _settings(args), args.speaker, args.work, args.overwrite)
        if "report" in counts:
            _print_outcome(counts["report"], args.out)
        else:
            print(f"higgs-prep: process {counts['process']} finished its recordings ({counts['transcribed_now']} "
                  "clips transcribed now); the last process to finish writes the dataset")
    elif args.command == "score":
        from data_prep.score import score_dataset

        _print_outcome(score_dataset(args.data, args.out, _settings(args), args.overwrite), args.out)
    elif args.command == "encode":
        from data_prep.encode import encode_dataset
        from higgs_train.builtins import assets
        from higgs_train.model.loading import load_audio_tokenizer

        device = args.device
        if device == "cuda" and "LOCAL_RANK" in os.environ:  # under a launcher: each process its own GPU
            device = f"cuda:{os.environ['LOCAL_RANK']}"
        tokenizer = load_audio_tokenizer(assets.resolve(args.model)).to(device)
        report = encode_dataset(assets.resolve(args.data), tokenizer, args.batch_size, args.shard_size)
        unreadable = f"; skipped {len(report['unreadable'])} that cannot be read (listed in the report)" \
            if report["unreadable"] else ""
        print(f"higgs-prep: encoded {report['encoded']} of {report['clips']} clips ({report['already_cached']} were "
              f"cached already){unreadable}; codes in {report['cache']} (numbers in encode_report.json there)\n"
              f"higgs-prep: next: higgs-train recipe=voice_clone_lora data.path={args.data} "
              f"model.name_or_path={args.model}")
    elif args.command == "pairs":
        from data_prep.judged_pairs import build_pairs
        from higgs_train.runtime.run_lock import hold_output

        with hold_output(args.out, "--out"):  # two runs into one --out would replace each other's half-written pairs
            info = build_pairs(args)
        left = "; ".join(f"{n} {why}" for why, n in info["no_pair"].items()) or "none"
        print(f"higgs-prep: {info['pairs']} pairs from {info['prompts']} prompts ({info['sampled_now']} sampled now, "
              f"the rest from the candidate cache; without a pair: {left}) in {info['out']}\n"
              f"higgs-prep: next: higgs-train recipe=dpo_lora model.name_or_path={args.model} "
              f"data.pairs={info['out']}")
    elif args.command == "demo":
        from higgs_train.builtins.demo_data import write_demo_dataset

        print(write_demo_dataset(args.out) / "train.jsonl")
    elif args.command == "tiny-checkpoint":
        from higgs_train.builtins.random_checkpoint import write_random_checkpoint

        print(write_random_checkpoint(args.out, "tiny", seed=args.seed))
    else:
        from higgs_train.builtins.random_checkpoint import write_random_checkpoint

        print(write_random_checkpoint(args.out, args.preset, args.num_layers, args.seed, args.device))


def main(argv: list[str] | None = None) -> None:
    renamed = renamed_spelling("higgs-prep", sys.argv[1:] if argv is None else argv)
    if renamed:
        print(f"higgs-prep: error: {renamed}", file=sys.stderr)
        sys.exit(2)
    args = _parser().parse_args(argv)
    log_to_console("higgs-prep")
    try:
        _run(args)
    except (UserError, FileNotFoundError, ValueError) as error:
        print(f"higgs-prep: error: {error}", file=sys.stderr)
        sys.exit(2)
    except OSError as error:
        line = environment_fault(error, "free space there, or write to another folder (--out; the code cache lives "
                                        "beside --data)")
        if line is None:
            raise
        print(f"higgs-prep: error: {line}", file=sys.stderr)
        sys.exit(1)


def console() -> None:
    """The `higgs-prep` command: no preparation quantizes, so bitsandbytes stays hidden (`hide_bitsandbytes`)."""
    from higgs_train.runtime.key_value_args import hide_bitsandbytes

    hide_bitsandbytes()
    main()


if __name__ == "__main__":
    console()
