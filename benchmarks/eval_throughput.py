"""higgs-eval's throughput: the demo's test list (28 voice-clone utterances) through `evaluate_model` (generate,
decode, measure every registry metric, write the wavs), batched (`batch_size=8`) against one utterance at a time,
side by side in each round, greedy; the per-utterance records of both must be identical. The prompt clips are encoded
once before the rounds, as `higgs-eval` encodes them once per list for all its variants; that one-off time, the same
whatever the batch size, is printed apart.

    HIGGS_TRAIN_CACHE=/tmp/htcache .venv/bin/python benchmarks/eval_throughput.py [--rounds 3] [--max-new-tokens 60]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from higgs_train.builtins.assets import resolve
from higgs_train.commands.eval import evaluate_model
from higgs_train.config.files import CONFIG_DIR
from higgs_train.data.audio_codes import attach_codes
from higgs_train.evaluate.eval_lists import load_test_list
from higgs_train.evaluate.judges import Judges
from higgs_train.model.loading import load_for_inference


def batched_against_one_at_a_time(model, processor, utterances: list[dict], settings, folder: Path, batch_size: int,
                                   one_at_a_time: int | None = None) -> tuple[float, float]:
    """(batched utt/s on every utterance, one-at-a-time utt/s on the first `one_at_a_time` of them, all by default);
    stops if the records of the utterances both measured differ."""
    rates, found = {}, {}
    for size, subset in ((batch_size, utterances), (1, utterances[:one_at_a_time])):
        started = time.perf_counter()
        records = evaluate_model(model, processor, subset, OmegaConf.merge(settings, {"batch_size": size}),
                                 folder / str(size), Judges())
        rates[size] = len(subset) / (time.perf_counter() - started)
        found[size] = [{k: v for k, v in r.items() if k != "path"} for r in records]
    assert found[batch_size][:len(found[1])] == found[1], "batched and one-at-a-time evaluation differ"
    return rates[batch_size], rates[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=60)
    parser.add_argument("--model", default="builtin:tiny")
    args = parser.parse_args()
    model, processor = load_for_inference(resolve(args.model), None, torch.device("cpu"))
    utterances = load_test_list(resolve("builtin:demo-eval"))
    started = time.perf_counter()
    attach_codes(utterances, processor.audio_tokenizer)
    print(f"prompt clips encoded once: {time.perf_counter() - started:.1f} s", flush=True)
    settings = OmegaConf.merge(OmegaConf.load(CONFIG_DIR / "eval" / "default.yaml"),
                               {"max_new_tokens": args.max_new_tokens})
    ratios = []
    with tempfile.TemporaryDirectory() as scratch:
        for round_index in range(args.rounds):
            batched, single = batched_against_one_at_a_time(model, processor, utterances, settings,
                                                            Path(scratch) / str(round_index), 8)
            ratios.append(batched / single)
            print(f"round {round_index}: batched {batched:.2f} utt/s, one at a time {single:.2f} utt/s, "
                  f"{ratios[-1]:.2f}x; identical records", flush=True)
    print(f"| batched / one at a time | {statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f}) |")


if __name__ == "__main__":
    main()
