"""The real 28-layer architecture (random weights) on one GPU, through the real recipe: for each row of the target
table that fits one GPU, the peak `torch.cuda.max_memory_allocated` of the training steps, tokens/s and MFU; then
packed rows under `flex_attention` against bucketed SDPA rows on a speech-like length spread; a DPO LoRA step on a
pair of 2 x 2,048 positions (live reference) and a GRPO LoRA step with a group of 8 (generation share, answers
judged per second); and higgs-eval's batched against one-at-a-time throughput on a 100-utterance list (`--eval`).
Prepared to finish in about 10 minutes on an H100/H200 (the checkpoint is drawn on the GPU and written in bf16,
11.5 GB).

    python benchmarks/real_size_gpu.py --work /tmp/real_size --out $OUT/real_size.md
    # the CPU check of the script itself, at the tiny kit's widths (flex_attention has no backward on CPU, and bf16
    # at the real widths runs on a reference GEMM there, minutes a step):
    python benchmarks/real_size_gpu.py --work /tmp/rs --preset tiny --steps 2 --device cpu --frames 200 --clips 16 \
        --eval 20 --eval-tokens 30

Each row runs in its own process (fresh peak statistics). Data: noise clips with random codes written straight into
the code cache (encoding is not what is measured); memory rows train on one conversation of 2,048 positions, the
throughput rows on 1-10 s clips (LJSpeech-like) in batches of up to 16,384 positions.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

FRAME_RATE = 25
MEMORY_ROW = ("trainer.batch_size=1", "data.max_positions=2048", "model.gradient_checkpointing=true")
SPREAD_ROW = ("trainer.max_tokens_per_batch=16384", "data.max_positions=4096", "model.gradient_checkpointing=true")
LORA = ("peft=lora_audio", "peft.r=16", "peft.alpha=32")
ROWS = {
    "LoRA r16, bf16 base": ("memory", (*LORA, "model.weights_dtype=bf16"), None),
    "QLoRA r16, NF4 base": ("memory", (*LORA, "model.quantization=nf4"), None),
    "audio path full FT, 8-bit AdamW": ("memory", ("peft=none", "freeze=text_path", "optim.name=adamw8bit"), None),
    "LoRA r16, bucketed, sdpa": ("spread", (*LORA, "model.attn_implementation=sdpa"), None),
    "LoRA r16, packed, flex_attention": ("spread", (*LORA, "trainer.packing=true",
                                                    "model.attn_implementation=flex_attention"), "cuda"),
    "DPO LoRA r16, bf16 base, 2 x 2,048": ("pairs", (*LORA, "model.weights_dtype=bf16", "objective=dpo"), None),
    "GRPO LoRA r16, bf16 base, G = 8": ("memory", (*LORA, "model.weights_dtype=bf16", "objective=grpo",
                                                   "objective.samples_per_prompt=8", "objective.max_new_tokens=250",
                                                   "objective.kl_beta=0.04"), None),
}


def _write_data(folder: Path, checkpoint: Path, kind: str, long_frames: int, clips: int) -> Path:
    """A conversation JSONL with noise clips whose (random) codes are already in the cache."""
    import numpy as np
    import soundfile as sf
    import torch

    from higgs_train.data.code_cache import CodeCache, tokenizer_fingerprint
    from higgs_train.model.loading import load_audio_tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    lengths = [long_frames] * 4 if kind == "memory" else [int(rng.uniform(1, 10) * FRAME_RATE) for _ in range(clips)]
    cache = CodeCache(folder, tokenizer_fingerprint(load_audio_tokenizer(str(checkpoint))))
    codes, lines = {}, []
    for index, frames in enumerate(lengths):
        clip = folder / "clips" / f"{index}.wav"
        clip.parent.mkdir(exist_ok=True)
        # quiet noise, not silence: the data checks refuse a silent clip
        sf.write(clip, 0.05 * np.random.default_rng(index).standard_normal(frames * 960).astype(np.float32), 24000)
        codes[cache.key(clip)] = torch.randint(0, 1024, (8, frames), generator=torch.Generator().manual_seed(index))
        words = " ".join("speech" for _ in range(max(1, frames // 40)))  # byte-level: ~0.18 tokens a frame
        lines.append(json.dumps({"id": str(index), "speaker": "a", "messages": [
            {"role": "system", "content": [{"type": "text", "text": "Generate audio following instruction."}]},
            {"role": "user", "content": [{"type": "text", "text": words}]},
            {"role": "assistant", "content": [{"type": "audio", "path": f"clips/{index}.wav"}]}]}))
    cache.write_shard(codes)
    (folder / "train.jsonl").write_text("\n".join(lines) + "\n")
    return folder / "train.jsonl"


def _write_pairs(folder: Path, frames: int) -> Path:
    """One pair of random answers of `frames` frames each to a short text prompt: 2 x 2,048 positions."""
    import numpy as np

    from higgs_train.data.pair_table import write_pairs

    generator = np.random.default_rng(0)
    prompt = [{"role": "system", "content": [{"type": "text", "text": "Generate audio following instruction."}]},
              {"role": "user", "content": [{"type": "text", "text": " ".join(["speech"] * (frames // 40))}]}]
    clips = [generator.integers(0, 1024, (8, frames)).astype(np.int16) for _ in range(2)]
    pairs = [{"id": "0", "prompt": prompt, "chosen": 0, "rejected": 1, "chosen_stopped": True,
              "rejected_stopped": True, "scores": {}}]
    if not (folder / "pairs.json").exists():
        write_pairs(folder, pairs, clips, {"model": "random", "data": "random"})
    return folder


def one(checkpoint: str, data: str, row: str, steps: int, device: str) -> dict:
    """One row in this process: setup, one warm-up step, `steps` timed steps."""
    import torch

    from higgs_train.config.files import compose_config
    from higgs_train.train.recipe import FineTuneRecipe
    from higgs_train.train.throughput import peak_flops, peak_memory_gb

    kind, overrides, _ = ROWS[row]
    cfg = compose_config([
        f"model.name_or_path={checkpoint}", f"data.path={data}", "task=smart_voice", "trainer.precision=bf16",
        f"trainer.device={device}", f"trainer.max_steps={steps + 1}", "trainer.save_every_n_steps=null",
        "trainer.log_every_n_steps=1", "eval.val_size=0", "eval.num_samples=0", "optim.scheduler=constant",
        "overwrite=true", *(SPREAD_ROW if kind == "spread" else MEMORY_ROW), *overrides,
        *((f"data.pairs={data}", "data.path=null") if kind == "pairs" else ())])
    recipe = FineTuneRecipe(cfg, Path(data).parent / "runs" / row.replace(" ", "_").replace(",", ""))
    cuda = recipe.accelerator.device.type == "cuda"
    try:
        recipe.setup()
        recipe.model.train()
        recipe.train_step()  # warm-up: kernels chosen, allocator grown
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        started, positions, reports = time.perf_counter(), 0, []
        for _ in range(steps):
            result = recipe.train_step()
            positions += result.positions
            reports.append(result.metrics)
        if cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        tokens_per_s = positions / seconds
        flops = peak_flops(recipe.accelerator.device, "bf16", None)
        generation = [float(r["generation_share"]) for r in reports if "generation_share" in r]
        judged = [float(r["answers_judged_per_s"]) for r in reports if "answers_judged_per_s" in r]
        return {"row": row, "device": torch.cuda.get_device_name() if cuda else "CPU", "steps": steps,
                "peak_gib": peak_memory_gb(recipe.accelerator.device), "tokens_per_s": tokens_per_s,
                "mfu": recipe.flops_per_token * tokens_per_s / flops if flops else None,
                "positions_per_step": positions / steps,
                "note": f"generation share {statistics.median(generation):.2f}, "
                        f"{statistics.median(judged):.1f} answers judged/s" if generation else ""}
    finally:
        recipe.cleanup()


def eval_throughput(checkpoint: Path, folder: Path, count: int, new_tokens: int, device: str) -> str:
    """higgs-eval on a `count`-utterance voice-clone list (3 s prompt clips of noise, encoded once first, as higgs-eval
    does): benchmarks/eval_throughput.py's comparison, batched (16) against one at a time on the first 16."""
    import numpy as np
    import soundfile as sf
    import torch
    from eval_throughput import batched_against_one_at_a_time
    from omegaconf import OmegaConf

    from higgs_train.config.files import CONFIG_DIR
    from higgs_train.data.audio_codes import attach_codes
    from higgs_train.evaluate.eval_lists import load_test_list
    from higgs_train.model.loading import load_for_inference

    (folder / "wavs").mkdir(parents=True, exist_ok=True)
    generator = np.random.default_rng(0)
    lines = []
    for index in range(count):
        sf.write(folder / "wavs" / f"{index}.wav", 0.1 * generator.standard_normal(72000).astype(np.float32), 24000)
        lines.append(f"u{index}|a prompt sentence|wavs/{index}.wav|the sentence number {index} to be spoken")
    (folder / "meta.lst").write_text("\n".join(lines) + "\n")
    model, processor = load_for_inference(str(checkpoint), None, torch.device(device))
    utterances = load_test_list(str(folder / "meta.lst"))
    attach_codes(utterances, processor.audio_tokenizer)
    settings = OmegaConf.merge(OmegaConf.load(CONFIG_DIR / "eval" / "default.yaml"), {"max_new_tokens": new_tokens})
    batched, single = batched_against_one_at_a_time(model, processor, utterances, settings, folder, 16, 16)
    return (f"higgs-eval, {count} utterances, {new_tokens} new tokens: batched (16) {batched:.2f} utt/s, one at a "
            f"time {single:.2f} utt/s (first 16), {batched / single:.2f}x; records of the first 16 identical")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="folder for the checkpoint, data and runs")
    parser.add_argument("--out", type=Path, help="markdown table to write (default: print only)")
    parser.add_argument("--preset", choices=("real", "tiny"), default="real")
    parser.add_argument("--num-layers", type=int, default=None, help="decoder layers (default: the preset's; real 28)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--frames", type=int, default=1900, help="code frames of the memory rows' clip (2,048 "
                        "positions with its prompt)")
    parser.add_argument("--clips", type=int, default=400, help="clips of the throughput rows")
    parser.add_argument("--eval", type=int, default=100, help="utterances of the higgs-eval throughput list (0: skip)")
    parser.add_argument("--eval-tokens", type=int, default=150, help="new tokens per utterance there")
    parser.add_argument("--one", nargs=3, metavar=("CHECKPOINT", "DATA", "ROW"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(*args.one, args.steps, args.device)))
        return

    from higgs_train.builtins.random_checkpoint import write_random_checkpoint

    started = time.time()
    checkpoint = args.work / f"{args.preset}-{args.num_layers or 'all'}-layers"
    if not (checkpoint / "model.safetensors.index.json").exists() and not (checkpoint / "model.safetensors").exists():
        write_random_checkpoint(checkpoint, args.preset, args.num_layers, device=args.device)
    print(f"checkpoint ready after {time.time() - started:.0f} s", file=sys.stderr)
    data = {kind: _write_data(args.work / f"data-{kind}", checkpoint, kind, args.frames, args.clips)
            for kind in ("memory", "spread")}
    data["pairs"] = _write_pairs(args.work / "data-pairs" / "pairs", args.frames)
    lines = [f"| row | peak allocated (GiB) | tokens/s | MFU | positions/step | ({args.preset} widths, "
             f"{args.num_layers or 'all'} layers, {args.steps} timed steps) | note |", "|---|---|---|---|---|---|---|"]
    for row, (kind, _, needs) in ROWS.items():
        if needs and needs != args.device:
            lines.append(f"| {row} | skipped: needs {needs} | | | | | |")
            continue
        done = subprocess.run([sys.executable, __file__, "--one", str(checkpoint), str(data[kind]), row,
                               "--steps", str(args.steps), "--device", args.device, "--work", str(args.work)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            lines.append(f"| {row} | failed: {done.stderr.strip().splitlines()[-1][:150]} | | | | | |")
            continue
        result = json.loads(done.stdout.strip().splitlines()[-1])
        mfu = f"{100 * result['mfu']:.1f}%" if result["mfu"] else "n/a"
        lines.append(f"| {row} | {result['peak_gib']:.2f} | {result['tokens_per_s']:.0f} | {mfu} | "
                     f"{result['positions_per_step']:.0f} | {result['device']} | {result['note']} |")
        print(lines[-1], file=sys.stderr)
    if args.eval:
        lines += ["", eval_throughput(checkpoint, args.work / "eval", args.eval, args.eval_tokens, args.device)]
        print(lines[-1], file=sys.stderr)
    table = "\n".join(lines) + f"\n\n(total {time.time() - started:.0f} s)\n"
    print(table)
    if args.out:
        args.out.write_text(table)


if __name__ == "__main__":
    main()
