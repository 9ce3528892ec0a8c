"""Eval generation: the eval loop's batched sampling (`eval.batch_size=8`) against one prompt at a time
(`eval.batch_size=1`), side by side in one process on the same 8 held-out-style prompts, greedy, tiny checkpoint.

    HIGGS_TRAIN_CACHE=/tmp/htcache .venv/bin/python benchmarks/generation.py

Both run `write_samples` (generate, decode to 24 kHz, measure, write wav), the path the eval loop and
`higgs-generate` take. Reports samples/s, the ratio, and whether both produced the same code frames.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import soundfile as sf
import torch
from omegaconf import OmegaConf
from transformers import HiggsAudioV2ForConditionalGeneration

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from higgs_train.builtins.assets import ensure_builtin  # noqa: E402
from higgs_train.config.files import CONFIG_DIR  # noqa: E402
from higgs_train.data.audio_codes import attach_codes  # noqa: E402
from higgs_train.data.collator import ConversationCollator  # noqa: E402
from higgs_train.data.conversations import load_rows  # noqa: E402
from higgs_train.data.tasks import choose_references, task_conversation  # noqa: E402
from higgs_train.evaluate.samples import write_samples  # noqa: E402
from higgs_train.model.loading import load_processor  # noqa: E402

PROMPTS, MAX_NEW_TOKENS, REPEATS = 8, 150, 3


def main() -> None:
    torch.set_num_threads(2)
    checkpoint, demo = ensure_builtin("tiny"), ensure_builtin("demo")
    processor = load_processor(str(checkpoint))
    model = HiggsAudioV2ForConditionalGeneration.from_pretrained(checkpoint, attn_implementation="sdpa").eval()
    rows = load_rows(demo / "train.jsonl")
    references = choose_references([r["speaker"] for r in rows], seed=0)[:PROMPTS]
    conversations = [task_conversation("voice_clone", rows[i], rows[j]) for i, j in enumerate(references)]
    attach_codes(conversations, processor.audio_tokenizer)
    collator = ConversationCollator(processor.tokenizer, model.config)
    defaults = OmegaConf.load(CONFIG_DIR / "eval" / "default.yaml")
    results = {}
    for name, batch_size in (("batched (eval.batch_size=8)", PROMPTS), ("one prompt at a time", 1)):
        eval_cfg = OmegaConf.merge(defaults, {"batch_size": batch_size, "max_new_tokens": MAX_NEW_TOKENS})
        best, frames = float("inf"), None
        for _ in range(REPEATS):
            with tempfile.TemporaryDirectory() as out:
                start = time.perf_counter()
                records, _ = write_samples(model, processor.audio_tokenizer, collator, conversations, eval_cfg,
                                           Path(out))
                best = min(best, time.perf_counter() - start)
                frames = [sf.read(r["path"])[0].tolist() for r in records]
        results[name] = (len(conversations) / best, frames)
    (batched, batched_audio), (single, single_audio) = results.values()
    print("| eval generation | samples/s | vs one at a time |")
    print("|---|---|---|")
    for name, (rate, _) in results.items():
        print(f"| {name} | {rate:.2f} | {rate / single:.2f}x |")
    print(f"same audio both ways: {batched_audio == single_audio}")


if __name__ == "__main__":
    main()
