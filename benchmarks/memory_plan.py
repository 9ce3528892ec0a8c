"""Training memory: the dry run's per-component estimate (higgs_train/model/memory.py) against measured peaks.

  python benchmarks/memory_plan.py estimate                      # 28-layer estimates for the target table
  python benchmarks/memory_plan.py measure --layers 2 4 --repeats 3

`measure` (CPU) writes real-width random checkpoints (`higgs-prep random-checkpoint --preset real --num-layers N`,
cached under $HIGGS_TRAIN_CACHE/bench/), then for each setup runs the real recipe in a fresh process: `setup()`, a reset
of the process's peak resident memory (VmHWM), one optimizer step of `train()` on the demo data (batches of at most
256 positions, gradient checkpointing), and the peak again. Weights are read into memory instead of
memory-mapped, so every weight counts as it would on a GPU. The estimate is computed in the same process for the same
config. It prints measured / estimated per setup and the LoRA bf16-base / fp32-base ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Computed in fp32 except where the setup needs bf16: this CPU has no bf16 GEMM kernel (torch falls back to a
# reference loop, about 1 GFLOP/s at these widths), so a bf16 step of a real-width layer takes minutes.
SETUPS = {
    "lora_fp32_base": ("peft=lora_audio", "peft.r=16", "trainer.precision=fp32"),
    "lora_bf16_base": ("peft=lora_audio", "peft.r=16", "trainer.precision=bf16", "model.weights_dtype=bf16"),
    "qlora_nf4": ("peft=lora_audio", "peft.r=16", "trainer.precision=fp32", "model.quantization=nf4"),
    "audio_path_adamw8bit": ("peft=none", "freeze=text_path", "trainer.precision=fp32", "optim.name=adamw8bit"),
}
TOKENS = 256
COMMON = ("recipe=smoke", "model.gradient_checkpointing=true", "trainer.max_steps=1",
          f"trainer.max_tokens_per_batch={TOKENS}", f"data.max_positions={TOKENS}", "trainer.save_every_n_steps=null",
          "eval.num_samples=0", "eval.val_size=0", "trainer.log_every_n_steps=1")
# The target table of issue 11: a batch of one 2,048-position conversation, gradient checkpointing, bf16.
TARGETS = {
    "LoRA (lora_audio, r 16) on a bf16 frozen base": (("peft=lora_audio", "peft.r=16"), 1, 18),
    "QLoRA: the same adapters on a 4-bit NF4 base": (("peft=lora_audio", "peft.r=16", "model.quantization=nf4"), 1, 10),
    "full fine-tuning of the audio path, 8-bit AdamW": (("peft=none", "freeze=text_path", "optim.name=adamw8bit"), 1,
                                                        45),
    "full fine-tuning, ZeRO-3 over 8 GPUs": (("peft=none",), 8, 30),
}


# Preference objectives on the bf16 LoRA base: DPO's batch is a pair (chosen + rejected, 2 x 2,048 positions);
# GRPO's one prompt with its clip (1,024 positions), answered 8 times.
DPO = ("peft=lora_audio", "peft.r=16", "objective=dpo", "data.pairs=x", "trainer.max_tokens_per_batch=null")
PREFERENCE = {
    "DPO LoRA, live reference (adapters off)": ((*DPO,), 2 * 2048, 18),
    "DPO LoRA, precomputed reference": ((*DPO, "objective.reference=precomputed"), 2 * 2048, None),
    "GRPO LoRA, group of 8, KL to the reference": (("peft=lora_audio", "peft.r=16", "objective=grpo",
                                                    "trainer.batch_size=1", "objective.max_new_tokens=500",
                                                    "trainer.max_tokens_per_batch=null"), 1024, None),
}


def _compose(overrides: list[str]):
    from higgs_train.config.files import compose_config

    return compose_config(overrides)


def _plan(cfg, model_path: str, tokens: int, audio_tokenizer_params: int, device_type: str) -> dict:
    from higgs_train.model.memory import estimate_training_memory
    from higgs_train.model.trainable import build_trainable_model

    model = build_trainable_model(cfg, model_path, "sdpa", on_meta=True)
    return estimate_training_memory(model, cfg, tokens, audio_tokenizer_params, device_type)


def estimate() -> None:
    """The 28-layer plan per target row, from the real config alone (meta device, no checkpoint needed)."""
    import tempfile

    from higgs_train.builtins.random_checkpoint import MODEL_PRESETS
    from higgs_train.model.memory import GIB

    with tempfile.TemporaryDirectory() as folder:
        from transformers import HiggsAudioV2Config

        HiggsAudioV2Config(**MODEL_PRESETS["real"], codebook_size=1026).save_pretrained(folder)
        print("| setup | GPUs | weights | quant. state | gradients | optimizer | activations | logits | audio tok. "
              "| runtime | total per GPU | goal |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for row, (overrides, gpus, goal) in TARGETS.items():
            cfg = _compose([*COMMON, "trainer.precision=bf16", f"model.name_or_path={folder}", *overrides])
            plan = _plan(cfg, folder, 2048, 201_000_000, "cuda")
            if gpus > 1:  # ZeRO-3 shards weights, gradients and optimizer states over the processes
                for part in ("weights", "gradients", "optimizer"):
                    plan[part] /= gpus
                plan["total"] = sum(v for k, v in plan.items() if k != "total")
            cells = " | ".join(f"{plan[k]:.2f}" for k in ("weights", "quantization state", "gradients", "optimizer",
                                                          "activations", "logits", "audio tokenizer", "runtime"))
            print(f"| {row} | {gpus} | {cells} | **{plan['total']:.1f} GiB** | <= {goal} GB "
                  f"({goal * 1e9 / GIB:.1f} GiB) |")
        print("\n| preference setup | positions | plan of the forward and backward | its extras | total | goal |")
        print("|---|---|---|---|---|---|")
        for row, (overrides, positions, goal) in PREFERENCE.items():
            cfg = _compose([*COMMON, "trainer.precision=bf16", f"model.name_or_path={folder}", *overrides])
            plan = _plan(cfg, folder, positions, 201_000_000, "cuda")
            from higgs_train.model.trainable import build_trainable_model
            from higgs_train.objectives import build_objective

            model = build_trainable_model(cfg, folder, "sdpa", on_meta=True)
            extras = build_objective(cfg, None, model, model.config).memory_extras(model.config, positions)
            shown = ", ".join(f"{k} {v:.2f}" for k, v in extras.items()) or "none"
            total = plan["total"] + sum(extras.values())
            print(f"| {row} | {positions} | {plan['total']:.2f} | {shown} | **{total:.1f} GiB** | "
                  f"{f'<= {goal} GB ({goal * 1e9 / GIB:.1f} GiB)' if goal else ''} |")


def _peak_rss_gib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    raise RuntimeError("no VmHWM in /proc/self/status")


def one(checkpoint: str, setup: str, run_dir: str) -> None:
    """One measurement in this process; prints a JSON line."""
    import torch
    from transformers import PreTrainedModel

    from higgs_train.train.recipe import FineTuneRecipe

    load = PreTrainedModel.from_pretrained.__func__
    PreTrainedModel.from_pretrained = classmethod(lambda cls, *a, **k: load(cls, *a, **{"disable_mmap": True, **k}))
    cfg = _compose([*COMMON, f"model.name_or_path={checkpoint}", "data=demo", *SETUPS[setup]])
    recipe = FineTuneRecipe(cfg, Path(run_dir))
    try:
        recipe.setup()
        after_setup = _peak_rss_gib()
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak to what is resident now
        recipe.train()
        measured = _peak_rss_gib()
        audio_params = sum(p.numel() for p in recipe.processor.audio_tokenizer.parameters())
    finally:
        recipe.cleanup()
    plan = _plan(cfg, checkpoint, TOKENS, audio_params, "cpu")
    print(json.dumps({"setup": setup, "measured_gib": measured, "setup_peak_gib": after_setup, "plan": plan,
                      "threads": torch.get_num_threads()}))


def _checkpoint(layers: int) -> Path:
    from higgs_train.builtins.random_checkpoint import write_random_checkpoint
    from higgs_train.runtime.cache import cache_root

    folder = cache_root() / "bench" / f"real-{layers}-layers"
    if not (folder / ".complete").is_file():
        write_random_checkpoint(folder, "real", layers)
        (folder / ".complete").write_text("ok\n")
    return folder


def measure(layer_counts: list[int], repeats: int, setups: list[str]) -> None:
    """`repeats` runs of each setup at the first layer count (the ratio's), one at the others, where the bf16 step
    (minutes on this CPU, see SETUPS) is left out."""
    import tempfile

    results: dict[tuple[int, str], list[dict]] = {}
    for repeat in range(repeats):
        for layers in layer_counts if repeat == 0 else layer_counts[:1]:
            checkpoint = _checkpoint(layers)
            for setup in setups:
                if layers != layer_counts[0] and setup == "lora_bf16_base":
                    continue
                with tempfile.TemporaryDirectory() as run_dir:
                    done = subprocess.run([sys.executable, __file__, "one", "--checkpoint", str(checkpoint),
                                           "--setup", setup, "--run-dir", f"{run_dir}/run"],
                                          capture_output=True, text=True, check=True)
                record = json.loads(done.stdout.strip().splitlines()[-1])
                results.setdefault((layers, setup), []).append(record)
                print(f"  {layers} layers {setup}: measured {record['measured_gib']:.2f} GiB, estimated "
                      f"{record['plan']['total']:.2f} GiB", file=sys.stderr)
    print("| layers | setup | measured peak (GiB: median, range, runs) | estimated (GiB) | measured / estimated |")
    print("|---|---|---|---|---|")
    for (layers, setup), records in results.items():
        measured = [r["measured_gib"] for r in records]
        estimated = records[0]["plan"]["total"]
        print(f"| {layers} | {setup} | {statistics.median(measured):.2f} ({min(measured):.2f}-{max(measured):.2f}, "
              f"{len(measured)}) | {estimated:.2f} | {statistics.median(measured) / estimated:.2f} |")
    for layers in layer_counts[:1] if {"lora_bf16_base", "lora_fp32_base"} <= set(setups) else ():
        ratios = [bf16["measured_gib"] / fp32["measured_gib"] for bf16, fp32 in
                  zip(results[(layers, "lora_bf16_base")], results[(layers, "lora_fp32_base")])]
        print(f"LoRA bf16-base / fp32-base peak, {layers} layers, {TOKENS} positions: median "
              f"{statistics.median(ratios):.3f} (range {min(ratios):.3f}-{max(ratios):.3f}, {repeats} runs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("estimate")
    measuring = commands.add_parser("measure")
    measuring.add_argument("--layers", type=int, nargs="+", default=[2, 4])
    measuring.add_argument("--repeats", type=int, default=3)
    measuring.add_argument("--setups", nargs="+", choices=SETUPS, default=list(SETUPS))
    single = commands.add_parser("one")
    single.add_argument("--checkpoint", required=True)
    single.add_argument("--setup", choices=SETUPS, required=True)
    single.add_argument("--run-dir", required=True)
    args = parser.parse_args()
    if args.command == "estimate":
        estimate()
    elif args.command == "measure":
        measure(args.layers, args.repeats, args.setups)
    else:
        one(args.checkpoint, args.setup, args.run_dir)


if __name__ == "__main__":
    main()
