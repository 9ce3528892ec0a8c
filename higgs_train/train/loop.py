"""The training run, top to bottom: setup -> (resume) -> train -> save -> listen. One plain loop over Accelerate.

Loss normalisation: a step's loss is the sum over codebooks of (summed cross-entropy / number of supervised targets),
with both counted over every micro-batch of the accumulation window on every process, so accumulation and data
parallelism give the gradient of the one big batch, whatever the lengths of the conversations in it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import (DistributedType, GradientAccumulationPlugin, InitProcessGroupKwargs,
                               broadcast_object_list, set_seed)
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import get_scheduler

from higgs_train import assets
from higgs_train.data.collator import ConversationCollator
from higgs_train.data.prepare import prepare_conversations, split_validation
from higgs_train.data.sampler import FixedSizeBatchSampler, TokenBudgetBatchSampler
from higgs_train.evaluate.evaluation import Evaluator
from higgs_train.model.loading import load_model, load_processor, resolve_attn_implementation
from higgs_train.model.freezing import apply_freeze
from higgs_train.model.peft_setup import apply_peft
from higgs_train.train.batches import BatchStream
from higgs_train.train.checkpoint import (check_compatible, load_checkpoint, remove_partial_checkpoints,
                                          run_signature, save_checkpoint)
from higgs_train.train.loss import audio_loss_terms, target_counts
from higgs_train.train.metrics import JsonlMetrics
from higgs_train.train.run_dir import RunDirError, claim_run_dir, truncate_metrics
from higgs_train.train.throughput import flops_per_token, parameter_size, peak_flops, peak_memory_gb

MIXED_PRECISION = {"bf16": "bf16", "fp16": "fp16", "fp32": "no"}
SCHEDULERS = {"cosine": "cosine", "linear": "linear", "constant": "constant_with_warmup"}


class TrainingError(RuntimeError):
    """The run cannot go on (e.g. too many non-finite steps); the message says what was saved and what to try."""


def build_accelerator(cfg: DictConfig, run_dir: Path) -> Accelerator:
    trackers = {"wandb": "wandb", "tensorboard": "tensorboard"}.get(cfg.logger.name)
    handlers = []
    if os.environ.get("ACCELERATE_USE_DEEPSPEED") == "true" and not torch.cuda.is_available():
        # DeepSpeed on CPU (DS_ACCELERATOR=cpu): without a named backend Accelerate counts one process per rank.
        handlers.append(InitProcessGroupKwargs(backend="gloo"))
    accelerator = Accelerator(
        mixed_precision=MIXED_PRECISION[cfg.trainer.precision],
        # Windows are ours (one step = gradient_accumulation_steps batches); never cut one short at an epoch end.
        gradient_accumulation_plugin=GradientAccumulationPlugin(
            num_steps=cfg.trainer.gradient_accumulation_steps, sync_with_dataloader=False),
        cpu=cfg.trainer.device == "cpu",
        log_with=trackers,
        project_dir=str(run_dir),
        dynamo_backend="inductor" if cfg.trainer.compile else "no",
        kwargs_handlers=handlers,
    )
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched != accelerator.num_processes:
        raise RuntimeError(f"launched {launched} processes but Accelerate sees {accelerator.num_processes}: on CPU use "
                           "`accelerate launch --multi_gpu --num_processes N ... trainer.device=cpu` (DDP), or "
                           "`--use_deepspeed` with trainer.device=auto and DS_ACCELERATOR=cpu (DeepSpeed)")
    return accelerator


def build_dataloader(conversations: list[dict], collator, cfg: DictConfig):
    """Random fixed-size batches, or token-budget batches (bucketed, or packed with `trainer.packing`); every order
    is a function of (seed, epoch), which exact resume relies on. Returns (dataloader, sampler)."""
    if cfg.trainer.max_tokens_per_batch is None:
        sampler = FixedSizeBatchSampler(len(conversations), cfg.trainer.batch_size, cfg.seed)
    else:
        sampler = TokenBudgetBatchSampler([c["num_positions"] for c in conversations],
                                          cfg.trainer.max_tokens_per_batch,
                                          mode="pack" if cfg.trainer.packing else "bucket", seed=cfg.seed)
    # A private generator: starting an epoch's iterator draws a seed from it, never from the global RNG that
    # dropout uses, so the RNG stream does not depend on where in an epoch a run was resumed.
    loader = DataLoader(conversations, batch_sampler=sampler, collate_fn=collator,
                        num_workers=cfg.trainer.num_workers, generator=torch.Generator().manual_seed(cfg.seed))
    return loader, sampler


def _init_trackers(accelerator, cfg: DictConfig, run_dir: Path) -> None:
    if cfg.logger.name == "jsonl":
        return
    init_kwargs = {}
    if cfg.logger.name == "wandb":
        init_kwargs["wandb"] = {"dir": str(run_dir), "mode": cfg.logger.mode, "name": run_dir.name}
    accelerator.init_trackers(cfg.logger.get("project", "higgs-train"),
                              config=_flat(OmegaConf.to_container(cfg, resolve=True)), init_kwargs=init_kwargs)


def _flat(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return flat


def _finite(value) -> bool:
    return value is None or math.isfinite(float(value))


@contextlib.contextmanager
def _whole_weights(plugin):
    """Loads inside it are not partitioned by ZeRO-3: the audio tokenizer is frozen and used whole on every process
    (Transformers partitions any `from_pretrained` while Accelerate's DeepSpeed config is registered)."""
    from transformers.integrations.deepspeed import set_hf_deepspeed_config, unset_hf_deepspeed_config

    unset_hf_deepspeed_config()
    try:
        yield
    finally:
        if plugin.dschf is not None:
            set_hf_deepspeed_config(plugin.dschf)


def _claim(accelerator, cfg: DictConfig, run_dir: Path, log) -> tuple[Path, Path | None]:
    """The main process's run directory and resume decision, shared with every process (one decision, no races)."""
    outcome = [None]
    if accelerator.is_main_process:
        try:
            resume_from = claim_run_dir(run_dir, cfg.resume, cfg.overwrite, True, log)
            run_dir.mkdir(parents=True, exist_ok=True)
            remove_partial_checkpoints(run_dir)
            snapshot = run_dir / ".hydra" / "config.yaml"
            if not snapshot.is_file():  # called as a library, not through Hydra: keep the config export reads
                snapshot.parent.mkdir(exist_ok=True)
                OmegaConf.save(cfg, snapshot)
            outcome = [(str(run_dir), str(resume_from) if resume_from else None, None)]
        except RunDirError as error:
            outcome = [(str(run_dir), None, str(error))]
    if accelerator.num_processes > 1:
        broadcast_object_list(outcome, from_process=0)
    shared_dir, resume_from, error = outcome[0]
    if error:
        raise RunDirError(error)
    return Path(shared_dir), Path(resume_from) if resume_from else None


def train(cfg: DictConfig, run_dir: Path) -> dict:
    """Runs the configured job and returns its summary (also written to `run_summary.json`)."""
    accelerator = build_accelerator(cfg, run_dir)
    try:
        return _train(accelerator, cfg, run_dir)
    finally:
        accelerator.end_training()  # also tears the process group down, before the interpreter exits


def _train(accelerator: Accelerator, cfg: DictConfig, run_dir: Path) -> dict:
    started = time.time()
    is_main = accelerator.is_main_process
    log = print if is_main else (lambda *_: None)
    run_dir, resume_from = _claim(accelerator, cfg, run_dir, log)
    set_seed(cfg.seed)

    with accelerator.main_process_first():
        model_path = assets.resolve(cfg.model.name_or_path, log)
        data_path = assets.resolve(cfg.data.path, log)
    plugin = accelerator.state.deepspeed_plugin
    zero3 = plugin is not None and plugin.zero_stage == 3
    with _whole_weights(plugin) if zero3 else contextlib.nullcontext():
        processor = load_processor(model_path)
    attn = resolve_attn_implementation(cfg.model.attn_implementation, accelerator.device)
    if cfg.trainer.packing and attn != "flash_attention_2":
        log(f"higgs-train: warning: trainer.packing=true with attention={attn}: a packed row attends over its whole "
            "length, which is slower than bucketing (trainer.packing=false) unless FlashAttention 2 is used")
    model = load_model(model_path, attn, torch.float32, use_text_head=cfg.model.use_text_head)
    model = apply_freeze(apply_peft(model, cfg.peft), cfg.freeze.trainable)
    if cfg.model.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model_config = model.config
    text_head = next((m for name, m in model.named_modules() if name.endswith("text_lm_head")), None)
    flops_token = flops_per_token(model, cfg.model.gradient_checkpointing)
    frame_rate = processor.audio_tokenizer.config.frame_rate

    collator = ConversationCollator(processor.tokenizer, model_config, packing=cfg.trainer.packing)
    processor.audio_tokenizer.to(accelerator.device)
    with accelerator.main_process_first():  # the main process fills the code cache's gaps first
        prepared = prepare_conversations(DictConfig({**cfg.data, "path": data_path}), cfg.task.name, cfg.seed,
                                         collator, processor.audio_tokenizer, show_progress=is_main, log=log)
    conversations, validation = split_validation(prepared.conversations, cfg.eval.val_size, cfg.seed)
    dataloader, sampler = build_dataloader(conversations, collator, cfg)

    trainable = [p for p in model.parameters() if p.requires_grad]
    fused = accelerator.device.type == "cuda" if cfg.optim.fused == "auto" else bool(cfg.optim.fused)
    optimizer = torch.optim.AdamW(trainable, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay,
                                  betas=tuple(cfg.optim.betas), fused=fused or None)
    # The scheduler stays outside `prepare`: one scheduler step per optimizer step whatever the process count.
    scheduler = get_scheduler(SCHEDULERS[cfg.optim.scheduler], optimizer, num_warmup_steps=cfg.optim.warmup_steps,
                              num_training_steps=cfg.trainer.max_steps)
    uses_deepspeed = accelerator.distributed_type == DistributedType.DEEPSPEED
    if uses_deepspeed:  # batches come from our sampler, so DeepSpeed's "auto" sizes cannot be read off the loader
        ds_config = accelerator.state.deepspeed_plugin.deepspeed_config
        ds_config["train_micro_batch_size_per_gpu"] = cfg.trainer.batch_size
        ds_config["gradient_clipping"] = cfg.optim.max_grad_norm
    model, optimizer, dataloader = accelerator.prepare(model, optimizer, dataloader)
    batches = BatchStream(accelerator, dataloader, sampler)

    signature = run_signature(cfg, accelerator.num_processes)
    state = {"step": 0, "skipped_steps": 0, "bad_in_a_row": 0, "first_loss": None, "train_seconds": 0.0,
             "supervised_frames": 0, "positions": 0}
    if resume_from is not None:
        saved = json.loads((resume_from / "trainer_state.json").read_text())
        check_compatible(saved["signature"], signature, resume_from)
        saved = load_checkpoint(accelerator, resume_from, model, optimizer, scheduler, uses_deepspeed)
        state = saved["state"]
        batches.restore(saved["data_position"])
        if is_main:
            for name in ("metrics.jsonl", "eval.jsonl"):
                truncate_metrics(run_dir / name, state["step"])
        log(f"higgs-train: resumed from {resume_from} at step {state['step']}")

    metrics = JsonlMetrics(run_dir / "metrics.jsonl") if is_main else None
    _init_trackers(accelerator, cfg, run_dir)
    evaluator = Evaluator(accelerator, cfg, collator, processor.audio_tokenizer, validation, conversations, run_dir,
                          every_process_forwards=zero3, log=log)
    total = sum(parameter_size(p) for p in model.parameters())
    log(f"higgs-train: {len(conversations)} conversations, {len(validation)} held out for validation (left out: {prepared.skipped or 'none'}; "
        f"clips {prepared.codes}); {sum(parameter_size(p) for p in trainable):,} of {total:,} parameters trained; "
        f"attention={attn}; {accelerator.num_processes} process(es); run dir {run_dir}")

    def checkpoint() -> Path:
        trainer_state = {"signature": signature, "state": state, "data_position": batches.state()}
        return save_checkpoint(accelerator, run_dir, state["step"], model, optimizer, scheduler, trainer_state,
                               cfg.trainer.keep_last_n, uses_deepspeed)

    peak = peak_flops(accelerator.device, cfg.trainer.precision, cfg.trainer.peak_tflops)
    progress = tqdm(total=cfg.trainer.max_steps, initial=state["step"], desc="training", unit="step",
                    disable=not is_main)
    accumulation = cfg.trainer.gradient_accumulation_steps
    # accelerator.backward divides by the accumulation steps and DDP averages over processes: undo both, since the
    # loss below is already normalised by the window's global target count.
    loss_scale = accumulation * accelerator.num_processes
    window_clock, window_frames, window_positions, window_slots = time.time(), 0, 0, 0
    last_loss = None
    model.train()
    while state["step"] < cfg.trainer.max_steps:
        window = [next(batches) for _ in range(accumulation)]
        counts = [target_counts(batch) for batch in window]
        audio_total = accelerator.reduce(sum(c[0] for c in counts), "sum").clamp(min=1)
        text_total = accelerator.reduce(sum(c[1] for c in counts), "sum").clamp(min=1)
        step_positions = sum(int(b["attention_mask"].sum()) if "attention_mask" in b else b["input_ids"].numel()
                             for b in window)
        window_positions += step_positions
        window_slots += sum(b["input_ids"].numel() for b in window)
        sums = torch.zeros_like(audio_total, dtype=torch.float32)
        text_sum = torch.zeros((), device=sums.device)
        for batch in window:
            with accelerator.accumulate(model):
                terms = audio_loss_terms(model, batch, model_config, text_head)
                loss = (terms.sums / audio_total).sum()
                if text_head is not None:
                    loss = loss + cfg.optim.text_loss_weight * terms.text_sum / text_total
                    text_sum += terms.text_sum.detach()
                accelerator.backward(loss * loss_scale)
            sums += terms.sums.detach()
        grad_norm = accelerator.clip_grad_norm_(trainable, cfg.optim.max_grad_norm)
        per_codebook = (accelerator.reduce(sums, "sum") / audio_total).tolist()
        step_loss = sum(per_codebook)
        finite = math.isfinite(step_loss) and _finite(grad_norm)
        if finite or cfg.trainer.precision == "fp16":
            optimizer.step()  # fp16: the grad scaler itself skips non-finite gradients and lowers its scale
        if finite:
            scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        state["step"] += 1
        step = state["step"]
        if finite:
            state["bad_in_a_row"] = 0
            last_loss = step_loss
            state["first_loss"] = step_loss if state["first_loss"] is None else state["first_loss"]
        else:
            state["skipped_steps"] += 1
            state["bad_in_a_row"] += 1
            log(f"higgs-train: warning: step {step} skipped (loss {step_loss}, grad norm {grad_norm})")
            if state["bad_in_a_row"] >= cfg.trainer.max_bad_steps:
                saved_to = checkpoint()
                raise TrainingError(
                    f"{state['bad_in_a_row']} non-finite steps in a row (last at step {step}); the last good state "
                    f"is saved in {saved_to}; lower optim.lr, use trainer.precision=bf16/fp32 or check the data")
        frames = int(audio_total[0])  # supervised frames of the whole window, all processes
        window_frames += frames
        state["supervised_frames"] += frames
        state["positions"] += step_positions
        progress.update(1)
        progress.set_postfix(loss=f"{step_loss:.3f}")
        if finite and (step % cfg.trainer.log_every_n_steps == 0 or step in (1, cfg.trainer.max_steps)):
            elapsed = max(time.time() - window_clock, 1e-9)
            record = {"step": step, "loss": step_loss, "loss_per_codebook": per_codebook,
                      "grad_norm": float(grad_norm) if grad_norm is not None else None,
                      "lr": scheduler.get_last_lr()[0], "supervised_frames_per_s": window_frames / elapsed,
                      "audio_seconds_per_s": window_frames / frame_rate / elapsed,
                      "tokens_per_s": window_positions * accelerator.num_processes / elapsed,
                      "padding_share": 1 - window_positions / max(window_slots, 1),
                      "peak_memory_gb": peak_memory_gb(accelerator.device),
                      "skipped_steps": state["skipped_steps"], "elapsed_s": round(time.time() - started, 3)}
            if text_head is not None:
                record["text_loss"] = float(accelerator.reduce(text_sum, "sum") / text_total)
            if peak:
                record["mfu"] = flops_token * record["tokens_per_s"] / (peak * accelerator.num_processes)
            if metrics:
                metrics.log(record)
            accelerator.log({k: v for k, v in record.items() if k != "loss_per_codebook"}, step=step)
            state["train_seconds"] += time.time() - window_clock
            window_clock, window_frames, window_positions, window_slots = time.time(), 0, 0, 0
        if cfg.trainer.save_every_n_steps and step % cfg.trainer.save_every_n_steps == 0:
            checkpoint()
        if cfg.eval.every_n_steps and step % cfg.eval.every_n_steps == 0 and step < cfg.trainer.max_steps:
            eval_started = time.time()
            evaluator(model, step)
            window_clock += time.time() - eval_started  # evaluation time is not training time
    progress.close()
    state["train_seconds"] += time.time() - window_clock

    accelerator.wait_for_everyone()
    # Under ZeRO-3 the weights are sharded: every process takes part in gathering them before the main one saves.
    gathered = accelerator.get_state_dict(model) if uses_deepspeed else None
    summary = {"steps": state["step"], "first_loss": state["first_loss"], "final_loss": last_loss,
               "skipped_rows": prepared.skipped, "skipped_steps": state["skipped_steps"], "clips": prepared.codes}
    if is_main:
        unwrapped = accelerator.unwrap_model(model)
        final_dir = run_dir / ("model" if cfg.peft.type == "none" else "adapter")
        partial = run_dir / f".{final_dir.name}.partial"
        unwrapped.save_pretrained(partial, **({"state_dict": gathered} if gathered is not None else {}))
        if cfg.peft.type == "none":
            processor.save_pretrained(partial)
        if final_dir.exists():
            shutil.rmtree(final_dir)
        os.replace(partial, final_dir)
    final_eval = evaluator(model, state["step"])
    if is_main:
        train_seconds = max(state["train_seconds"], 1e-9)
        summary.update({
            "samples": final_eval.pop("samples", []),
            **{key: value for key, value in final_eval.items() if key != "step"},
            "wall_s": round(time.time() - started, 1), "train_s": round(train_seconds, 1),
            "peak_memory_gb": round(peak_memory_gb(accelerator.device), 3),
            "tokens_per_s": round(state["positions"] * accelerator.num_processes / train_seconds, 1),
            "audio_seconds_per_s": round(state["supervised_frames"] / frame_rate / train_seconds, 2),
        })
        if metrics:
            metrics.close()
        summary_partial = run_dir / ".run_summary.json.partial"
        summary_partial.write_text(json.dumps(summary, indent=2))
        os.replace(summary_partial, run_dir / "run_summary.json")
        log(f"higgs-train: done in {summary['wall_s']} s, loss {state['first_loss']:.3f} -> {last_loss:.3f}; "
            f"{len(summary['samples'])} samples in {run_dir / 'samples'}")
    return summary
