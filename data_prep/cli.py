"""`higgs-prep`: offline data and checkpoint preparation."""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="higgs-prep", description="Prepare data and checkpoints for higgs-train.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="speak a small two-voice demo dataset with espeak-ng (24 kHz wav + JSONL)")
    demo.add_argument("--out", required=True, help="output folder (gets clips/, train.jsonl, speakers.json)")
    tiny = commands.add_parser("tiny-checkpoint", help="write a tiny random-weight Higgs Audio V2 checkpoint")
    tiny.add_argument("--out", required=True, help="output folder, loadable with from_pretrained")
    tiny.add_argument("--seed", type=int, default=0, help="seed of the random weights (same seed, same files)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from data_prep.demo import write_demo_dataset

        print(write_demo_dataset(args.out) / "train.jsonl")
    else:
        from data_prep.tiny_checkpoint import write_tiny_checkpoint

        print(write_tiny_checkpoint(args.out, seed=args.seed))


if __name__ == "__main__":
    main()
