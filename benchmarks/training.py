"""Training throughput and memory, each comparison side by side on the same inputs:

1. packed vs padded random batching: supervised audio frames/s over one epoch of the same 96 conversations, and the
   validation loss each reaches (equal loss = the same learning, only faster). Clip lengths follow a speech-dataset
   spread (1 to 10 s, like LJSpeech), codes random, tiny checkpoint.
2. LoRA (`lora_audio`) vs full fine-tuning, and gradient checkpointing on vs off: peak memory of one training step
   of a mid-size random Higgs model (each variant in a fresh process, since peak RSS only grows).

    HIGGS_TRAIN_CACHE=/tmp/htcache .venv/bin/python benchmarks/training.py
"""

from __future__ import annotations

import json
import os
import random
import resource
import subprocess
import sys
import time

import torch
from omegaconf import OmegaConf
from transformers import AutoConfig, HiggsAudioV2ForConditionalGeneration

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from higgs_train.builtins.assets import ensure_builtin  # noqa: E402
from higgs_train.config.files import CONFIG_DIR  # noqa: E402
from higgs_train.data.collator import ConversationCollator  # noqa: E402
from higgs_train.data.sampler import FixedSizeBatchSampler, TokenBudgetBatchSampler  # noqa: E402
from higgs_train.model.loading import load_processor  # noqa: E402
from higgs_train.model.loss import audio_loss_terms  # noqa: E402
from higgs_train.model.peft_setup import apply_peft  # noqa: E402

CONVERSATIONS, LR = 96, 3e-3


def conversation(index: int, frames: int) -> dict:
    codes = torch.randint(0, 1024, (8, frames), generator=torch.Generator().manual_seed(index))
    return {"id": str(index), "messages": [
        {"role": "system", "content": [{"type": "text", "text": "Generate audio following instruction."}]},
        {"role": "user", "content": [{"type": "text", "text": "word " * (frames // 6)}]},
        {"role": "assistant", "content": [{"type": "audio", "codes": codes}]}]}


def one_epoch(checkpoint, collator, rows, batches, validation) -> dict:
    torch.manual_seed(0)
    model = HiggsAudioV2ForConditionalGeneration.from_pretrained(checkpoint, attn_implementation="sdpa")
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR)
    frames, start = 0, time.perf_counter()
    for indices in batches:
        batch = collator([rows[i] for i in indices])
        terms = audio_loss_terms(model, batch, model.config)
        (terms.sums / terms.counts.clamp(min=1)).sum().backward()
        optimizer.step()
        optimizer.zero_grad()
        frames += int(terms.counts[0])
    seconds = time.perf_counter() - start
    with torch.no_grad():
        terms = audio_loss_terms(model.eval(), collator(validation), model.config)
    val_loss = float((terms.sums / terms.counts).sum())
    return {"frames_per_s": frames / seconds, "steps": len(batches), "val_loss": val_loss}


def packing_vs_padding() -> None:
    checkpoint = ensure_builtin("tiny")
    processor = load_processor(str(checkpoint))
    rng = random.Random(0)
    lengths = [int(25 * min(10.0, max(1.0, rng.lognormvariate(1.2, 0.6)))) for _ in range(CONVERSATIONS + 8)]
    rows = [conversation(i, n) for i, n in enumerate(lengths)]
    rows, validation = rows[:CONVERSATIONS], rows[CONVERSATIONS:]
    padded = ConversationCollator(processor.tokenizer, AutoConfig.from_pretrained(checkpoint))
    packed = ConversationCollator(processor.tokenizer, AutoConfig.from_pretrained(checkpoint), packing=True)
    positions = [padded.encode(r["messages"]).num_positions for r in rows]
    print(f"{len(rows)} conversations of {min(positions)}-{max(positions)} positions")
    print("| batching | real positions | optimizer steps | supervised frames/s | vs padded "
          "| val loss after the epoch |")
    print("|---|---|---|---|---|---|")
    for rows_per_batch in (4, 16):
        random_batches = list(FixedSizeBatchSampler(len(rows), rows_per_batch, seed=0))
        # The row length that gives about as many optimizer steps as the padded epoch (same schedule, same data).
        budget = max(max(positions), -(-sum(positions) // len(random_batches)) + 40)
        packed_batches = list(TokenBudgetBatchSampler(positions, budget, mode="pack", seed=0))
        # Bucketing: padded batches of similar lengths under a budget of rows x longest, again about as many steps.
        bucket_budget = budget + max(positions)
        bucketed_batches = list(TokenBudgetBatchSampler(positions, bucket_budget, mode="bucket", seed=0))
        one_epoch(checkpoint, padded, rows, random_batches[:2], validation)  # warm-up, not timed
        base = one_epoch(checkpoint, padded, rows, random_batches, validation)
        bucketed = one_epoch(checkpoint, padded, rows, bucketed_batches, validation)
        ours = one_epoch(checkpoint, packed, rows, packed_batches, validation)
        for name, batches, r in ((f"padded random batches of {rows_per_batch}", random_batches, base),
                                 (f"bucketed, {bucket_budget}-position budget", bucketed_batches, bucketed),
                                 (f"packed rows of {budget} positions", None, ours)):
            share = 1.0 if batches is None else sum(positions) / sum(max(positions[i] for i in b) * len(b)
                                                                     for b in batches)
            print(f"| {name} | {100 * share:.1f}% | {r['steps']} | {r['frames_per_s']:.0f} | "
                  f"{r['frames_per_s'] / base['frames_per_s']:.2f}x | {r['val_loss']:.3f} |")


# A mid-size random model: the real layout (DualFFN, GQA, 8 codebooks x 1026), scaled so a step fits this CPU.
MID_SIZE = dict(hidden_size=768, intermediate_size=2048, num_hidden_layers=8, num_attention_heads=12,
                num_key_value_heads=4, head_dim=64)


def mid_size_model():
    """(text tokenizer, config, randomly initialised model) of MID_SIZE, with the tiny kit's tokenizer."""
    from higgs_train.builtins.random_checkpoint import build_model_config, build_text_tokenizer

    tokenizer = build_text_tokenizer()
    config = build_model_config(tokenizer, num_codebooks=8)
    for key, value in MID_SIZE.items():
        setattr(config, key, value)
    return tokenizer, config, HiggsAudioV2ForConditionalGeneration(config)


def memory_variant(peft: str, checkpointing: bool, frames: int) -> dict:
    """Runs in its own process: peak RSS of two training steps on one conversation with a clip of `frames`."""
    torch.manual_seed(0)
    tokenizer, config, model = mid_size_model()
    peft_cfg = OmegaConf.load(CONFIG_DIR / "peft" / "lora_attn.yaml")
    if peft == "lora_audio":
        peft_cfg.target_modules += ["audio_mlp.gate_proj", "audio_mlp.up_proj", "audio_mlp.down_proj"]
    else:
        peft_cfg.type = "none"
    model = apply_peft(model, peft_cfg)
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    batch = ConversationCollator(tokenizer, config)([conversation(0, frames)])
    start = time.perf_counter()
    for _ in range(2):
        terms = audio_loss_terms(model, batch, config)
        (terms.sums / terms.counts.clamp(min=1)).sum().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return {"peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            "step_s": (time.perf_counter() - start) / 2, "tokens": int(batch["input_ids"].numel()),
            "params": sum(p.numel() for p in model.parameters()),
            "trained": sum(p.numel() for p in model.parameters() if p.requires_grad)}


# (adapter, gradient checkpointing, clip frames): a short clip, where weights and optimizer state dominate (LoRA
# vs full), and a long one, where activations do (checkpointing on vs off).
MEMORY_VARIANTS = (("full", False, 200), ("lora_audio", False, 200), ("full", False, 1600), ("full", True, 1600),
                   ("lora_audio", False, 1600), ("lora_audio", True, 1600))


def memory() -> None:
    print("| variant | positions | parameters trained | peak RSS (GiB) | step (s) |")
    print("|---|---|---|---|---|")
    results = {}
    for peft, checkpointing, frames in MEMORY_VARIANTS:
        output = subprocess.run([sys.executable, __file__, "--memory", peft, str(checkpointing), str(frames)],
                                check=True, capture_output=True, text=True).stdout
        result = json.loads(output.strip().splitlines()[-1])
        results[(peft, checkpointing, frames)] = result["peak_gib"]
        print(f"| {peft}, gradient checkpointing {'on' if checkpointing else 'off'} | {result['tokens']} | "
              f"{result['trained']:,} of {result['params']:,} | {result['peak_gib']:.2f} | {result['step_s']:.1f} |")
    print(f"LoRA / full peak ({MEMORY_VARIANTS[0][2]} frames): "
          f"{results[('lora_audio', False, 200)] / results[('full', False, 200)]:.2f}; checkpointing on / off "
          f"(full, 1600 frames): {results[('full', True, 1600)] / results[('full', False, 1600)]:.2f}")


if __name__ == "__main__":
    torch.set_num_threads(2)
    if sys.argv[1:2] == ["--memory"]:
        print(json.dumps(memory_variant(sys.argv[2], sys.argv[3] == "True", int(sys.argv[4]))))
    else:
        packing_vs_padding()
        memory()
