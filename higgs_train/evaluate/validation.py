"""Validation loss and top-1 accuracy per codebook on the held-out conversations, normalised like the training loss
(summed over the whole split first, divided last; `val_loss` is the mean over codebooks) and split across processes
without duplicates."""

from __future__ import annotations

import torch

from higgs_train.model.loss import MODEL_INPUTS, audio_loss_terms
from higgs_train.runtime.progress import progress_bar


@torch.no_grad()
def validation_metrics(accelerator, model, batches: list[dict], model_config, split: bool = True) -> dict:
    """`model` is the unwrapped model. With `split` each process takes its share of the batches (no collective calls
    in the forward pass); without (ZeRO-3, where every forward needs every process) each runs them all."""
    num_codebooks = model_config.num_codebooks
    device = accelerator.device
    totals = torch.zeros((3, num_codebooks), device=device)  # loss sums, target counts, top-1 hits
    was_training = model.training
    model.eval()
    share = batches[accelerator.process_index::accelerator.num_processes] if split else batches
    # position=0: drawn over the training bar and cleared, never nested below it (a nested bar moves the cursor
    # with ANSI codes, which a log file keeps as stray characters).
    for batch in progress_bar(share, desc="validation", unit="batch", leave=False, position=0):
        batch = {k: v.to(device) for k, v in batch.items() if k in (*MODEL_INPUTS, "audio_labels", "labels")}
        with accelerator.autocast():
            terms = audio_loss_terms(model, batch, model_config, with_accuracy=True)
        totals += torch.stack([terms.sums.float(), terms.counts.float(), terms.correct.float()])
    model.train(was_training)
    sums, counts, correct = (accelerator.reduce(totals, "sum") if split else totals).cpu()
    counts = counts.clamp(min=1)
    per_codebook = (sums / counts).tolist()
    accuracy = (correct / counts).tolist()
    return {"val_loss": sum(per_codebook) / num_codebooks, "val_loss_per_codebook": per_codebook,
            "val_accuracy": sum(accuracy) / num_codebooks, "val_accuracy_per_codebook": accuracy}
