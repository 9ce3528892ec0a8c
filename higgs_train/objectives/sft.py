"""`objective=sft`: supervised fine-tuning, the cross-entropy of every target code and stream-EOS.

The step's loss is the mean over codebooks of (summed cross-entropy / number of supervised targets), both counted
over every micro-batch of the accumulation window on every process, so accumulation and data parallelism give the
gradient of the one big batch, whatever the lengths of the conversations in it. Each codebook weighs 1/K, as in
Boson's own trainer; `loss_per_codebook` keeps the breakdown.
"""

from __future__ import annotations

import torch

from higgs_train.config.objectives import SFTConfig
from higgs_train.data.loader import build_training_data
from higgs_train.data.source import DataPlan
from higgs_train.model.loss import audio_loss_terms, target_counts
from higgs_train.objectives.window import Window


class SupervisedFineTuning:
    loss_label = "mean over codebooks"
    def __init__(self, config: SFTConfig, accelerator, model, model_config, text_loss_weight: float):
        self.accelerator, self.model_config, self.text_loss_weight = accelerator, model_config, text_loss_weight
        self.text_head = next((m for name, m in model.named_modules() if name.endswith("text_lm_head")), None)

    def training_data(self, plan: DataPlan, processor):
        return build_training_data(plan, processor, self.model_config)

    def prepare(self, model, window: list[dict]) -> Window:
        counts = [target_counts(batch) for batch in window]
        audio = self.accelerator.reduce(sum(c[0] for c in counts), "sum").clamp(min=1)
        text = self.accelerator.reduce(sum(c[1] for c in counts), "sum").clamp(min=1)
        return Window(window, {"audio": audio, "text": text}, frames=int(audio[0]))

    def loss(self, model, batch: dict, window: Window) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        terms = audio_loss_terms(model, batch, self.model_config, self.text_head)
        loss = (terms.sums / window.totals["audio"]).mean()
        sums = {"audio": terms.sums.detach()}
        if self.text_head is not None:
            loss = loss + self.text_loss_weight * terms.text_sum / window.totals["text"]
            sums["text"] = terms.text_sum.detach()
        return loss, sums

    def report(self, sums: dict[str, torch.Tensor], window: Window) -> dict:
        per_codebook = (sums["audio"] / window.totals["audio"]).tolist()
        metrics = {"loss": sum(per_codebook) / len(per_codebook), "loss_per_codebook": per_codebook}
        if "text" in sums:
            metrics["text_loss"] = float(sums["text"] / window.totals["text"])
        return metrics
