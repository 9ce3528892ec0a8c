"""The evaluation of a run, every `eval.every_n_steps` and at the end: validation loss and accuracy per codebook on the
held-out split (all processes), then samples from a fixed list of prompts, generated, measured, written as wav files
and logged to the tracker (main process). Results go to `eval.jsonl`, the tracker and `report.html`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from higgs_train.data.audio import TARGET_SAMPLE_RATE
from higgs_train.data.audio_codes import attach_codes
from higgs_train.evaluate.judges import Judges
from higgs_train.evaluate.metrics import not_measured, summarize
from higgs_train.evaluate.prompts import load_prompts
from higgs_train.evaluate.report import write_report
from higgs_train.evaluate.samples import generate_in_batches, write_samples
from higgs_train.evaluate.validation import validation_metrics
from higgs_train.runtime.logs import logger
from higgs_train.runtime.progress import quiet_progress


def log_audio(accelerator, logger_name: str, records: list[dict], waveforms: list[np.ndarray], step: int) -> None:
    """Each sample as audio in the active tracker (wandb or TensorBoard); jsonl has the wav files instead."""
    if logger_name == "wandb":
        import wandb

        tracker = accelerator.get_tracker("wandb", unwrap=True)
        tracker.log({f"samples/{r['id']}": wandb.Audio(w, sample_rate=TARGET_SAMPLE_RATE)
                     for r, w in zip(records, waveforms) if len(w)}, step=step)
    elif logger_name == "tensorboard":
        writer = accelerator.get_tracker("tensorboard", unwrap=True)
        for record, waveform in zip(records, waveforms):
            if len(waveform):
                writer.add_audio(f"samples/{record['id']}", torch.from_numpy(waveform)[None], step,
                                 sample_rate=TARGET_SAMPLE_RATE)
        writer.flush()


def readable(result: dict) -> str:
    """An evaluation as the console shows it: `val_loss 2.31, stop_rate 0.5, ...`, and what was not measured."""
    shown = [f"{key} {value:.4g}" for key, value in result.items()
             if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "step"]
    shown += [f"{key} {why}" for key, why in result.get("not_measured", {}).items()]
    return ", ".join(shown) or "nothing measured"


class Evaluator:
    """Built once per run: the validation batches, the sample prompts (fixed for the whole run) and the judges."""

    def __init__(self, accelerator, cfg: DictConfig, collator, audio_tokenizer, validation: Sequence[dict],
                 prompt_pool: Sequence[dict], run_dir: Path, every_process_forwards: bool = False):
        """`every_process_forwards`: the weights are sharded (ZeRO-3), so every forward pass needs every process;
        they all run the same validation batches and the same generation, and the main process writes."""
        self.accelerator, self.cfg, self.collator, self.audio_tokenizer = accelerator, cfg, collator, audio_tokenizer
        self.run_dir, self.every_process_forwards = run_dir, every_process_forwards
        size = cfg.eval.batch_size
        self.val_batches = [collator([validation[j] for j in range(i, min(i + size, len(validation)))])
                            for i in range(0, len(validation), size)]
        if cfg.eval.prompts:
            self.prompts = load_prompts(cfg.eval.prompts)[: cfg.eval.num_samples]
            with quiet_progress():
                attach_codes(self.prompts, audio_tokenizer)
        else:
            self.prompts = [prompt_pool[i] for i in range(min(cfg.eval.num_samples, len(prompt_pool)))]
        self.judges = Judges.load(cfg.eval) if accelerator.is_main_process else Judges()

    def __call__(self, model, step: int) -> dict:
        """Every process calls this (the validation loss is shared out); returns the results (samples on main)."""
        accelerator = self.accelerator
        unwrapped = accelerator.unwrap_model(model)
        result = {"step": step}
        if self.val_batches:
            result.update(validation_metrics(accelerator, unwrapped, self.val_batches, unwrapped.config,
                                             split=not self.every_process_forwards))
        if self.every_process_forwards and not accelerator.is_main_process:
            with accelerator.autocast():  # the main process's generate calls, in step with it
                for _ in generate_in_batches(unwrapped, self.collator, self.prompts, self.cfg.eval):
                    pass
        if accelerator.is_main_process and self.prompts:
            with accelerator.autocast():
                records, waveforms = write_samples(unwrapped, self.audio_tokenizer, self.collator, self.prompts,
                                                   self.cfg.eval, self.run_dir / "samples" / f"step_{step}",
                                                   self.judges)
            result.update(summarize(records))
            result["not_measured"] = not_measured(self.judges)
            log_audio(accelerator, self.cfg.logger.name, records, waveforms, step)
            result["samples"] = records
        if accelerator.is_main_process and len(result) > 1:  # nothing to report with no split and no samples
            with open(self.run_dir / "eval.jsonl", "a") as handle:
                handle.write(json.dumps(result) + "\n")
            accelerator.log({f"eval/{k}": v for k, v in result.items() if isinstance(v, (int, float)) and k != "step"},
                            step=step)
            logger.info(f"eval at step {step}: {readable(result)}; report in {write_report(self.run_dir)}")
        accelerator.wait_for_everyone()
        return result
