"""`dry_run=true`: everything up to the first step (config, data, first batch, sizes), then stop without training.
It writes no file: the CLI runs it in a scratch folder it removes, and the run's own directory is left as it was."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from higgs_train.config import RunConfig, typed
from higgs_train.data.collator import ConversationCollator
from higgs_train.data.delay_pattern import delayed_length
from higgs_train.model.loss import IGNORE_INDEX
from higgs_train.model.memory import available_memory_gib, estimate_training_memory
from higgs_train.runtime.logs import logger
from higgs_train.train.recipe import FineTuneRecipe, batch_line


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
            codes = frames - delayed_length(0, collator.num_codebooks)
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


def dry_run(cfg: RunConfig | DictConfig, scratch_dir: Path) -> dict:
    """The recipe's own setup, its model on the meta device (sizes without weights) and its data as training reads
    it, then the first batch (returned, and described on the console). `scratch_dir`: where the accelerator may
    write, removed by the caller."""
    cfg = typed(cfg)
    recipe = FineTuneRecipe(cfg, scratch_dir)
    recipe.setup_model(on_meta=True)
    recipe.setup_data()
    model, processor, objective, data = recipe.model, recipe.processor, recipe.objective, recipe.data
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    batch = next(iter(data.dataloader))
    if isinstance(batch, list):  # an online objective's prompts: shown and sized with their target clips
        batch = data.collator(batch)

    logger.info(f"dry run: {len(data.training)} training conversations, {len(data.validation)} held out for "
                f"validation (left out: {data.skipped or 'none'})")
    logger.info("example 0 (supervised text in «»):\n" + describe_example(data.collator, data.training[0]))
    logger.info("first batch: " + ", ".join(f"{k} {tuple(v.shape)} {str(v.dtype).removeprefix('torch.')}"
                                            for k, v in batch.items()))
    logger.info(f"batch: {batch_line(cfg.trainer, cfg.objective)}")
    logger.info(f"parameters: {total:,} total, {trainable:,} trainable ({100 * trainable / total:.2f}%)")
    device, available = available_memory_gib(cfg.trainer.device)
    memory = estimate_training_memory(model, cfg, batch["input_ids"].numel(),
                                      sum(p.numel() for p in processor.audio_tokenizer.parameters()),
                                      "cpu" if device == "CPU RAM" else "cuda")
    memory.pop("total")
    if hasattr(objective, "memory_extras"):  # what the objective's step holds beyond one forward and backward
        memory.update(objective.memory_extras(model.config, batch["input_ids"].numel()))
    needed = sum(memory.values())
    verdict = "fits" if needed <= available else "does NOT fit"
    logger.info(f"estimated training memory per process: {needed:.2f} GiB ("
                + ", ".join(f"{k} {v:.2f}" for k, v in memory.items() if v) + f"); {verdict} {device} "
                f"({available:.1f} GiB)")
    return batch
