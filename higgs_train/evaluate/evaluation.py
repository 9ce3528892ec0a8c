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

from higgs_train.data.audio import TARGET_SAMPLE_RATE, load_audio
from higgs_train.data.audio_codes import attach_codes
from higgs_train.data.tasks.layout import target_audio
from higgs_train.evaluate.judges import AsrJudge, SpeakerJudge
from higgs_train.evaluate.prompts import load_prompts
from higgs_train.evaluate.report import write_report
from higgs_train.evaluate.sample_metrics import summarize
from higgs_train.evaluate.samples import generate_in_batches, write_samples
from higgs_train.evaluate.validation import validation_metrics
from higgs_train.logs import logger


def _reference_waveform(conversation: dict) -> np.ndarray | None:
    """The voice a sample should have: its target clip, else the prompt's first reference clip."""
    audio = [i for m in conversation["messages"] for i in m["content"] if i["type"] == "audio"]
    item = target_audio(conversation["messages"]) or (audio[0] if audio else None)
    if item is None:
        return None
    if "path" in item:
        return load_audio(item["path"])
    if "array" in item:
        return load_audio(np.asarray(item["array"], dtype=np.float32), source_rate=item["sampling_rate"])
    return None


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
            attach_codes(self.prompts, audio_tokenizer, show_progress=False)
        else:
            self.prompts = [prompt_pool[i] for i in range(min(cfg.eval.num_samples, len(prompt_pool)))]
        is_main = accelerator.is_main_process
        self.asr = AsrJudge.load(cfg.eval.asr_model) if cfg.eval.asr_model and is_main else None
        self.speaker = SpeakerJudge.load(cfg.eval.speaker_model) if cfg.eval.speaker_model and is_main else None

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
                                                   self.cfg.eval, self.run_dir / "samples" / f"step_{step}")
            self._judge(records, waveforms)
            result.update(summarize(records))
            log_audio(accelerator, self.cfg.logger.name, records, waveforms, step)
            result["samples"] = records
        if accelerator.is_main_process and len(result) > 1:  # nothing to report with no split and no samples
            with open(self.run_dir / "eval.jsonl", "a") as handle:
                handle.write(json.dumps(result) + "\n")
            accelerator.log({f"eval/{k}": v for k, v in result.items() if isinstance(v, (int, float)) and k != "step"},
                            step=step)
            shown = {k: round(v, 3) for k, v in result.items() if isinstance(v, float)}
            logger.info(f"eval at step {step}: {shown}; report in {write_report(self.run_dir)}")
        accelerator.wait_for_everyone()
        return result

    def _judge(self, records: list[dict], waveforms: list[np.ndarray]) -> None:
        for record, waveform, prompt in zip(records, waveforms, self.prompts):
            if not len(waveform):
                continue
            if self.asr is not None:
                record["wer"] = self.asr(waveform, record["text"])
            reference = _reference_waveform(prompt) if self.speaker is not None else None
            if reference is not None:
                record["speaker_similarity"] = self.speaker(waveform, reference)
