"""`dry_run=true`: everything up to the first step (config, data, first batch, sizes), then stop without training."""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig
from safetensors.torch import save_file
from transformers import AutoConfig, HiggsAudioV2ForConditionalGeneration

from higgs_train import assets
from higgs_train.data.collator import ConversationCollator
from higgs_train.data.delay_pattern import IGNORE_INDEX
from higgs_train.data.prepare import prepare_conversations, split_validation
from higgs_train.model.loading import load_processor
from higgs_train.model.memory import available_memory_gib, estimate_training_memory
from higgs_train.model.freezing import apply_freeze
from higgs_train.model.peft_setup import apply_peft


def describe_example(collator: ConversationCollator, conversation: dict) -> str:
    """The rendered conversation with «supervised text» marked and each clip summarised in place."""
    encoded = collator.encode(conversation["messages"])
    tokenizer = collator.tokenizer
    audio_ids = {collator.audio_token_id, collator.delay_token_id}
    pieces, clip, position = [], 0, 0
    while position < encoded.num_positions:
        token = encoded.input_ids[position]
        if token in audio_ids:
            frames = len(encoded.audio_ids[clip])
            supervised = bool((encoded.audio_labels[clip] != IGNORE_INDEX).any())
            codes = frames - collator.num_codebooks - 1
            role = f"supervised: {codes} codes + 1 stream-EOS per codebook" if supervised else "context, no targets"
            pieces.append(f"[audio clip {clip}: {codes} code frames -> {frames} "
                          f"delayed positions; {role}]")
            position += frames
            clip += 1
            continue
        text = tokenizer.decode([token])
        pieces.append(f"«{text}»" if encoded.labels[position] != IGNORE_INDEX else text)
        position += 1
    return "".join(pieces)


def dry_run(cfg: DictConfig, run_dir: Path) -> Path:
    model_path = assets.resolve(cfg.model.name_or_path)
    data_path = assets.resolve(cfg.data.path)
    processor = load_processor(model_path)
    config = AutoConfig.from_pretrained(model_path)
    with torch.device("meta"):  # sizes without reading or allocating any weight
        model = apply_peft(HiggsAudioV2ForConditionalGeneration(config), cfg.peft)
        model = apply_freeze(model, cfg.freeze.trainable)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)

    from higgs_train.train.loop import build_dataloader

    collator = ConversationCollator(processor.tokenizer, config, packing=cfg.trainer.packing)
    prepared = prepare_conversations(DictConfig({**cfg.data, "path": data_path}), cfg.task.name, cfg.seed, collator,
                                     processor.audio_tokenizer)
    training, validation = split_validation(prepared.conversations, cfg.eval.val_size, cfg.seed)
    batch = next(iter(build_dataloader(training, collator, cfg)[0]))
    out = run_dir / "dry_run" / "batch_0.safetensors"
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({name: tensor.contiguous() for name, tensor in batch.items()}, str(out))

    print(f"dry run: {len(training)} training conversations, {len(validation)} held out for validation (left out: "
          f"{prepared.skipped or 'none'})")
    print("example 0 (supervised text in «»):\n" + describe_example(collator, training[0]))
    print("first batch: " + ", ".join(f"{k} {tuple(v.shape)}" for k, v in batch.items()) + f" -> {out}")
    print(f"parameters: {total:,} total, {trainable:,} trainable ({100 * trainable / total:.2f}%)")
    memory = estimate_training_memory(config, total, trainable, batch["input_ids"].numel(), cfg.trainer.precision,
                                      cfg.model.gradient_checkpointing)
    device, available = available_memory_gib()
    print("estimated training memory per process: " + ", ".join(f"{k} {v:.2f} GiB" for k, v in memory.items())
          + f"; {device} has {available:.1f} GiB")
    return out
