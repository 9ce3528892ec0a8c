"""Validation loss and top-1 accuracy per codebook on the held-out conversations, normalised like the training loss
(summed over the whole split first, divided last) and split across processes without duplicates."""

from __future__ import annotations

import torch

from higgs_train.train.loss import MODEL_INPUTS, audio_loss_terms


@torch.no_grad()
def validation_metrics(accelerator, model, batches: list[dict], model_config) -> dict:
    """`model` is the unwrapped model (no collective calls, so each process may hold another number of batches)."""
    num_codebooks = model_config.num_codebooks
    device = accelerator.device
    totals = torch.zeros((3, num_codebooks), device=device)  # loss sums, target counts, top-1 hits
    was_training = model.training
    model.eval()
    for batch in batches[accelerator.process_index::accelerator.num_processes]:
        batch = {k: v.to(device) for k, v in batch.items() if k in (*MODEL_INPUTS, "audio_labels", "labels")}
        with accelerator.autocast():
            terms = audio_loss_terms(model, batch, model_config, with_accuracy=True)
        totals += torch.stack([terms.sums.float(), terms.counts.float(), terms.correct.float()])
    model.train(was_training)
    sums, counts, correct = accelerator.reduce(totals, "sum").cpu()
    counts = counts.clamp(min=1)
    per_codebook = (sums / counts).tolist()
    accuracy = (correct / counts).tolist()
    return {"val_loss": sum(per_codebook), "val_loss_per_codebook": per_codebook,
            "val_accuracy": sum(accuracy) / num_codebooks, "val_accuracy_per_codebook": accuracy}
