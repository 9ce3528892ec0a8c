"""The training run, top to bottom: setup -> train -> save -> listen. One plain loop over `accelerate.Accelerator`."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from omegaconf import DictConfig
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import get_scheduler

from higgs_train import assets
from higgs_train.data.collator import ConversationCollator
from higgs_train.data.prepare import prepare_conversations
from higgs_train.data.sampler import TokenBudgetBatchSampler
from higgs_train.evaluate.samples import write_samples
from higgs_train.model.loading import load_model, load_processor, resolve_attn_implementation
from higgs_train.model.peft_setup import apply_peft
from higgs_train.train.loss import audio_loss_terms
from higgs_train.train.metrics import JsonlMetrics

MIXED_PRECISION = {"bf16": "bf16", "fp16": "fp16", "fp32": "no"}


def _cycle(dataloader):
    """Batches forever, one epoch after another (the sampler reshuffles each epoch)."""
    epoch = 0
    while True:
        if hasattr(dataloader, "set_epoch"):
            dataloader.set_epoch(epoch)
        yield from dataloader
        epoch += 1


def build_dataloader(conversations: list[dict], collator, cfg: DictConfig) -> DataLoader:
    """Fixed-size random batches, or token-budget batches (bucketed, or packed with `trainer.packing`)."""
    if cfg.trainer.max_tokens_per_batch is None:
        return DataLoader(conversations, batch_size=cfg.trainer.batch_size, shuffle=True, collate_fn=collator,
                          generator=torch.Generator().manual_seed(cfg.seed), num_workers=cfg.trainer.num_workers)
    sampler = TokenBudgetBatchSampler([c["num_positions"] for c in conversations], cfg.trainer.max_tokens_per_batch,
                                      mode="pack" if cfg.trainer.packing else "bucket", seed=cfg.seed)
    return DataLoader(conversations, batch_sampler=sampler, collate_fn=collator, num_workers=cfg.trainer.num_workers)


def train(cfg: DictConfig, run_dir: Path) -> dict:
    """Runs the configured job and returns its summary (also written to `run_summary.json`)."""
    started = time.time()
    accelerator = Accelerator(
        mixed_precision=MIXED_PRECISION[cfg.trainer.precision],
        gradient_accumulation_steps=cfg.trainer.gradient_accumulation_steps,
        cpu=cfg.trainer.device == "cpu",
    )
    is_main = accelerator.is_main_process
    set_seed(cfg.seed)

    with accelerator.main_process_first():
        model_path = assets.resolve(cfg.model.name_or_path)
        data_path = assets.resolve(cfg.data.path)
    processor = load_processor(model_path)
    attn = resolve_attn_implementation(cfg.model.attn_implementation, accelerator.device)
    model = load_model(model_path, attn, torch.float32, use_text_head=False)
    model = apply_peft(model, cfg.peft)
    if cfg.model.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model_config = model.config

    collator = ConversationCollator(processor.tokenizer, model_config, packing=cfg.trainer.packing)
    data_cfg = {**cfg.data, "path": data_path}
    prepared = prepare_conversations(DictConfig(data_cfg), cfg.task.name, cfg.seed, collator,
                                     processor.audio_tokenizer, show_progress=is_main,
                                     log=print if is_main else lambda _: None)
    conversations = prepared.conversations
    dataloader = build_dataloader(conversations, collator, cfg)

    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay,
                                  betas=tuple(cfg.optim.betas))
    scheduler = get_scheduler(cfg.optim.scheduler, optimizer, num_warmup_steps=cfg.optim.warmup_steps,
                              num_training_steps=cfg.trainer.max_steps)
    model, optimizer, dataloader, scheduler = accelerator.prepare(model, optimizer, dataloader, scheduler)

    metrics = JsonlMetrics(run_dir / "metrics.jsonl") if is_main else None
    if is_main:
        total = sum(p.numel() for p in model.parameters())
        print(f"higgs-train: {len(conversations)} conversations (left out: {prepared.skipped or 'none'}; "
              f"clips {prepared.codes}); "
              f"{sum(p.numel() for p in trainable):,} of {total:,} parameters trained; attention={attn}; "
              f"run dir {run_dir}")
    progress = tqdm(total=cfg.trainer.max_steps, desc="training", unit="step", disable=not is_main)
    losses = []
    window_sums = window_counts = None
    batches = _cycle(dataloader)
    step = 0
    model.train()
    while step < cfg.trainer.max_steps:
        batch = next(batches)
        with accelerator.accumulate(model):
            terms = audio_loss_terms(model, batch, model_config)
            loss = (terms.sums / terms.counts.clamp(min=1)).sum()
            accelerator.backward(loss)
            window_sums = terms.sums.detach() + (0 if window_sums is None else window_sums)
            window_counts = terms.counts + (0 if window_counts is None else window_counts)
            grad_norm = None
            if accelerator.sync_gradients:
                grad_norm = accelerator.clip_grad_norm_(trainable, cfg.optim.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
        if not accelerator.sync_gradients:
            continue
        step += 1
        sums, counts = accelerator.reduce(window_sums, "sum"), accelerator.reduce(window_counts, "sum")
        per_codebook = (sums / counts.clamp(min=1)).tolist()
        losses.append(sum(per_codebook))
        window_sums = window_counts = None
        progress.update(1)
        progress.set_postfix(loss=f"{losses[-1]:.3f}")
        if metrics and (step % cfg.trainer.log_every_n_steps == 0 or step in (1, cfg.trainer.max_steps)):
            metrics.log({"step": step, "loss": losses[-1], "loss_per_codebook": per_codebook,
                         "grad_norm": float(grad_norm) if grad_norm is not None else None,
                         "lr": scheduler.get_last_lr()[0], "supervised_frames": int(counts[0]),
                         "elapsed_s": round(time.time() - started, 3)})
    progress.close()

    accelerator.wait_for_everyone()
    summary = {"steps": step, "first_loss": losses[0], "final_loss": losses[-1], "skipped_rows": prepared.skipped}
    if is_main:
        unwrapped = accelerator.unwrap_model(model)
        if cfg.peft.type == "none":
            unwrapped.save_pretrained(run_dir / "model")
            processor.save_pretrained(run_dir / "model")
        else:
            unwrapped.save_pretrained(run_dir / "adapter")
        eval_rows = conversations[: cfg.eval.num_samples]
        records = write_samples(unwrapped, processor.audio_tokenizer, collator, eval_rows, cfg.eval,
                                run_dir / "samples" / f"step_{step}")
        summary["samples"] = records
        summary["stop_rate"] = sum(r["stopped"] for r in records) / max(len(records), 1)
        summary["wall_s"] = round(time.time() - started, 1)
        if metrics:
            metrics.close()
        (run_dir / "run_summary.json").write_text(json.dumps(summary, indent=2))
        print(f"higgs-train: done in {summary['wall_s']} s, loss {losses[0]:.3f} -> {losses[-1]:.3f}; "
              f"{len(records)} samples in {run_dir / 'samples'}")
    accelerator.end_training()
    if not math.isfinite(losses[-1]):
        raise RuntimeError(f"training ended with a non-finite loss ({losses[-1]})")
    return summary
