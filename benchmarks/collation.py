"""Collation speed (cached codes / on-the-fly encoding / the processor) and the real-position share of batching modes.

    HIGGS_TRAIN_CACHE=/tmp/htcache .venv/bin/python benchmarks/collation.py

Everything runs side by side in one process on the same 32 conversations (tiny checkpoint, espeak-ng demo clips).
"""

from __future__ import annotations

import copy
import os
import time

import torch
from transformers import AutoConfig

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from higgs_train.builtins.assets import ensure_builtin  # noqa: E402
from higgs_train.data.audio import load_audio  # noqa: E402
from higgs_train.data.audio_codes import attach_codes, encode_waveform  # noqa: E402
from higgs_train.data.collator import ConversationCollator  # noqa: E402
from higgs_train.data.conversations import load_rows  # noqa: E402
from higgs_train.data.sampler import TokenBudgetBatchSampler  # noqa: E402
from higgs_train.data.tasks import choose_references, task_conversation  # noqa: E402
from higgs_train.model.loading import load_processor  # noqa: E402

BATCH = 4
REPEATS = 3


def timed(fn) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    torch.set_num_threads(2)
    checkpoint, demo = ensure_builtin("tiny"), ensure_builtin("demo")
    processor = load_processor(str(checkpoint))
    rows = load_rows(demo / "train.jsonl")
    references = choose_references([r["speaker"] for r in rows], seed=0)
    clone = [task_conversation("voice_clone", copy.deepcopy(row), copy.deepcopy(rows[j]))
             for row, j in zip(rows, references)]
    conversations = (clone + copy.deepcopy(rows))[:32]
    waveforms = {item["path"]: load_audio(item["path"]) for c in conversations for m in c["messages"]
                 for item in m["content"] if item["type"] == "audio"}
    cached = copy.deepcopy(conversations)
    attach_codes(cached, processor.audio_tokenizer)
    collator = ConversationCollator(processor.tokenizer, AutoConfig.from_pretrained(checkpoint))
    batches = [range(i, i + BATCH) for i in range(0, 32, BATCH)]

    def ours_cached():
        for b in batches:
            collator([cached[i] for i in b])

    def ours_on_the_fly():
        for b in batches:
            batch = copy.deepcopy([conversations[i] for i in b])
            for c in batch:
                for m in c["messages"]:
                    for item in m["content"]:
                        if item["type"] == "audio":
                            item["codes"] = encode_waveform(processor.audio_tokenizer, waveforms[item["path"]])
            collator(batch)

    def processor_loop():
        for b in batches:
            batch = copy.deepcopy([conversations[i]["messages"] for i in b])
            for messages in batch:
                for m in messages:
                    m.pop("supervised", None)
                    for item in m["content"]:
                        if item["type"] == "audio":
                            item["audio"] = waveforms[item.pop("path")]
            processor.apply_chat_template(batch, tokenize=True, return_dict=True, return_tensors="pt",
                                          processor_kwargs={"output_labels": True})

    with torch.no_grad():
        t_cached, t_fly, t_proc = timed(ours_cached), timed(ours_on_the_fly), timed(processor_loop)
    n = len(conversations)
    print(f"collation of {n} conversations in batches of {BATCH} (best of {REPEATS}):")
    print(f"  ours, cached codes      {n / t_cached:8.1f} conv/s")
    print(f"  ours, on-the-fly codes  {n / t_fly:8.1f} conv/s")
    print(f"  processor, output_labels {n / t_proc:7.1f} conv/s")
    print(f"  ratio cached / processor {t_proc / t_cached:6.1f}x; on-the-fly / processor {t_proc / t_fly:.2f}x")

    clone_cached = copy.deepcopy(clone)
    attach_codes(clone_cached, processor.audio_tokenizer)
    lengths = [collator.encode(c["messages"]).num_positions for c in clone_cached]
    budget = 4 * max(lengths)
    shuffled = torch.randperm(len(lengths), generator=torch.Generator().manual_seed(0))
    modes = {
        "random, batch_size=4": [chunk.tolist() for chunk in shuffled.split(4)],
        f"bucket, {budget} tokens": list(TokenBudgetBatchSampler(lengths, budget, "bucket", seed=0)),
        f"pack, {budget} tokens": list(TokenBudgetBatchSampler(lengths, budget, "pack", seed=0)),
    }
    print(f"real (non-pad) share of positions, demo set as voice_clone ({len(lengths)} conversations):")
    for name, batches_of_mode in modes.items():
        real = sum(lengths[i] for b in batches_of_mode for i in b)
        if name.startswith("pack"):
            padded = real  # one row per batch: no padding at all
        else:
            padded = sum(max(lengths[i] for i in b) * len(b) for b in batches_of_mode)
        print(f"  {name:28s} {100 * real / padded:5.1f}%  ({len(batches_of_mode)} batches)")


if __name__ == "__main__":
    main()
