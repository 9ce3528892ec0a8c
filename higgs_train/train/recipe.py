"""The training recipe in phases: `setup` (run directory, model, objective, data, optimizer, resume) -> `train` (one
optimizer step at a time) -> `finish` (final weights, last evaluation, summary). One plain loop over Accelerate; what
a step minimises is the objective's (`higgs_train/objectives/`), which the recipe asks for a window's micro-batches,
their losses and the step's metrics without knowing it by name.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from accelerate.utils import DistributedType, set_seed
from omegaconf import DictConfig
from transformers import get_scheduler

from higgs_train.config import RunConfig, as_dict, typed
from higgs_train.config.groups import TrainerConfig
from higgs_train.config.objectives import ObjectiveConfig
from higgs_train.data.table import longest_clip_frames
from higgs_train.evaluate.evaluation import Evaluator
from higgs_train.evaluate.metrics import direction
from higgs_train.model.loading import load_processor, resolve_attn_implementation
from higgs_train.model.trainable import build_trainable_model
from higgs_train.objectives import build_objective
from higgs_train.runtime import atomic
from higgs_train.runtime.errors import TrainingError
from higgs_train.runtime.logs import NOTICE, is_main_process, logger, quiet_other_ranks
from higgs_train.runtime.progress import progress_bar
from higgs_train.runtime.run_lock import hold_run_dir
from higgs_train.train.accelerator import build_accelerator, init_trackers, whole_weights
from higgs_train.train.batches import BatchStream
from higgs_train.train.best import KeepBest, eval_every
from higgs_train.train.checkpoint import load_checkpoint, save_checkpoint
from higgs_train.train.metrics_file import JsonlMetrics
from higgs_train.train.optimizer import build_optimizer, warmup_steps
from higgs_train.train.resumable import resume_record, run_signature
from higgs_train.train.run_dir import RunFinished, claim_for_all_processes, truncate_metrics
from higgs_train.train.sources import resolve_sources
from higgs_train.train.throughput import flops_per_token, parameter_size, peak_flops, peak_memory_gb

HELD_OUT_NOTICE_SHARE = 0.2  # a larger share of the data held out for validation is said out loud
SCHEDULERS = {"cosine": "cosine", "linear": "linear", "constant": "constant_with_warmup"}


@dataclass
class TrainingProgress:
    """The run's counters; a checkpoint stores them (`trainer_state.json` "state") and a resume restores them."""

    step: int = 0
    skipped_steps: int = 0
    bad_in_a_row: int = 0
    first_loss: float | None = None
    train_seconds: float = 0.0
    supervised_frames: int = 0
    positions: int = 0
    last_loss: float | None = None
    wall_seconds: float = 0.0  # the run's wall time up to the checkpoint, over every attempt
    best_value: float | None = None  # eval.best_metric at its best evaluation so far (train/best.py)
    best_step: int | None = None
    evals_since_best: int = 0
    stopped_early: bool = False


@dataclass
class StepResult:
    """One optimizer step as the logs see it: the objective's metrics (`loss` among them) and the throughput."""

    loss: float
    metrics: dict
    grad_norm: torch.Tensor | float | None
    finite: bool
    frames: int  # supervised frames of the whole window, all processes
    positions: int  # real (unpadded) positions on this process
    slots: int  # positions including padding


@dataclass
class ThroughputWindow:
    """What happened since the last logged step, for the rates in `metrics.jsonl`."""

    started: float = field(default_factory=time.time)
    frames: int = 0
    positions: int = 0
    slots: int = 0

    def add(self, result: StepResult) -> None:
        self.frames += result.frames
        self.positions += result.positions
        self.slots += result.slots

    def elapsed(self) -> float:
        return time.time() - self.started


class FineTuneRecipe:
    """One run of `higgs-train`: call `setup()`, `train()`, `finish()`, and `cleanup()` whatever happened."""

    def __init__(self, cfg: RunConfig, run_dir: Path):
        self.cfg, self.run_dir, self.started = cfg, Path(run_dir), time.time()
        self.accelerator = build_accelerator(cfg.trainer, cfg.logger, self.run_dir)
        self.is_main = self.accelerator.is_main_process
        self.progress = TrainingProgress()
        self.saved_step: int | None = None
        self.stop = StopRequests()

    # ---- setup -------------------------------------------------------------------------------------------------
    def setup(self) -> None:
        self.run_dir, resume_from = claim_for_all_processes(self.accelerator, self.cfg, self.run_dir)
        self.setup_model()
        self.setup_data()
        self._setup_optimizer()
        if resume_from is not None:
            self._resume(resume_from)
        self._setup_reporting()

    def setup_model(self, on_meta: bool = False) -> None:
        """The model half of setup; the dry run calls it `on_meta` (every parameter there to count, no weight read)."""
        cfg, accelerator = self.cfg, self.accelerator
        with accelerator.main_process_first():  # built-ins are made on first use, which draws random numbers
            self.model_path, self.data_plan = resolve_sources(cfg)
        set_seed(cfg.seed)  # after them: a first run and a rerun draw the same numbers
        with whole_weights(accelerator):
            self.processor = load_processor(self.model_path)
        self.attn = resolve_attn_implementation(cfg.model.attn_implementation, accelerator.device)
        if cfg.trainer.packing and self.attn != "flash_attention_2":
            logger.warning(f"trainer.packing=true with attention={self.attn}: a packed row attends over its whole "
                           "length, which is slower than bucketing (trainer.packing=false) unless FlashAttention 2 "
                           "is used")
        self.model = build_trainable_model(cfg, self.model_path, self.attn, accelerator.device, on_meta=on_meta)
        self.model_config = self.model.config
        self.objective = build_objective(cfg, accelerator, self.model, self.model_config, self.model_path)
        self.flops_per_token = flops_per_token(self.model, cfg.model.gradient_checkpointing)
        self.peak_flops = peak_flops(accelerator.device, cfg.trainer.precision, cfg.trainer.peak_tflops)

    def setup_data(self) -> None:
        """The data half of setup: the objective's training data, its first batch ready to draw."""
        self.processor.audio_tokenizer.to(self.accelerator.device)
        with self.accelerator.main_process_first():  # the main process fills the code cache's gaps first
            self.data = self.objective.training_data(self.data_plan, self.processor)

    def _setup_optimizer(self) -> None:
        cfg, accelerator = self.cfg, self.accelerator
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = build_optimizer(self.trainable, cfg.optim, accelerator.device)
        # The scheduler stays outside `prepare`: one scheduler step per optimizer step whatever the process count.
        self.scheduler = get_scheduler(SCHEDULERS[cfg.optim.scheduler], optimizer,
                                       num_warmup_steps=warmup_steps(cfg.optim, cfg.trainer.max_steps),
                                       num_training_steps=cfg.trainer.max_steps)
        self.uses_deepspeed = accelerator.distributed_type == DistributedType.DEEPSPEED
        if self.uses_deepspeed:  # batches come from our sampler: DeepSpeed's "auto" sizes cannot be read off a loader
            ds_config = accelerator.state.deepspeed_plugin.deepspeed_config
            ds_config["train_micro_batch_size_per_gpu"] = cfg.trainer.batch_size
            ds_config["gradient_clipping"] = cfg.optim.max_grad_norm
        self.model, self.optimizer, dataloader = accelerator.prepare(self.model, optimizer, self.data.dataloader)
        self.batches = BatchStream(accelerator, dataloader, self.data.sampler)
        self.signature = run_signature(cfg, accelerator.num_processes)
        self.resume_record = resume_record(cfg)

    def _resume(self, folder: Path) -> None:
        """Restores a checkpoint that `claim_for_all_processes` found intact and compatible."""
        saved = load_checkpoint(self.accelerator, folder, self.model, self.optimizer, self.scheduler,
                                self.uses_deepspeed)
        self.progress = TrainingProgress(**saved["state"])
        self.saved_step = self.progress.step
        self.started -= self.progress.wall_seconds  # wall time runs on from the checkpoint's, as elapsed_s shows
        self.batches.restore(saved["data_position"])
        if self.is_main:
            for name in ("metrics.jsonl", "eval.jsonl"):
                truncate_metrics(self.run_dir / name, self.progress.step)
        logger.info(f"resumed from {folder} at step {self.progress.step}")

    def _setup_reporting(self) -> None:
        accelerator, data = self.accelerator, self.data
        self.metrics = JsonlMetrics(self.run_dir / "metrics.jsonl") if self.is_main else None
        init_trackers(accelerator, self.cfg.logger, as_dict(self.cfg), self.run_dir)
        zero3 = self.uses_deepspeed and accelerator.state.deepspeed_plugin.zero_stage == 3
        self.keep_best = KeepBest(self.cfg.eval, self.cfg.trainer.early_stopping_patience,
                                  direction(self.cfg.eval.best_metric), accelerator)
        self.last_eval = None
        self.evaluator = Evaluator(accelerator, self.cfg, data.collator, self.processor.audio_tokenizer,
                                   data.validation, data.prompt_pool, self.run_dir, every_process_forwards=zero3)
        total = sum(parameter_size(p) for p in self.model.parameters())
        trained = sum(parameter_size(p) for p in self.trainable)
        logger.info(f"{len(data.training)} conversations, {len(data.validation)} held out for validation (left out: "
                    f"{data.skipped or 'none'}; clips {data.clips}); {trained:,} of {total:,} "
                    f"parameters trained; attention={self.attn}; {accelerator.num_processes} process(es); "
                    f"run dir {self.run_dir}")
        logger.info(f"batch: {batch_line(self.cfg.trainer, self.cfg.objective)}")
        held = len(data.validation) / max(len(data.training) + len(data.validation), 1)
        if held > HELD_OUT_NOTICE_SHARE:
            logger.log(NOTICE, f"{len(data.validation)} of {len(data.training) + len(data.validation)} conversations "
                               f"({held:.0%}) are held out for validation and not trained on (eval.val_size="
                               f"{self.cfg.eval.val_size}); eval.val_size=0, or a smaller number, trains on them")

    # ---- train -------------------------------------------------------------------------------------------------
    def train(self) -> None:
        """Steps until `trainer.max_steps`, logging, checkpointing and evaluating on the configured steps; SIGTERM
        or Ctrl-C stop it at the next step boundary with a checkpoint (`Preempted`)."""
        cfg, progress = self.cfg, self.progress
        bar = progress_bar(total=cfg.trainer.max_steps, initial=progress.step, desc="training", unit="step")
        window = ThroughputWindow()
        self.model.train()
        with self.stop.installed():
            try:
                while progress.step < cfg.trainer.max_steps and not progress.stopped_early:
                    self._stop_if_asked()
                    result = self.train_step()
                    window.add(result)
                    bar.update(1)
                    bar.set_postfix_str(self._progress_text(result))
                    window = self._after_step(result, window)
            finally:
                bar.close()
        progress.train_seconds += window.elapsed()

    def _progress_text(self, result: StepResult) -> str:
        headline = getattr(self.objective, "headline", None)
        if headline in result.metrics:
            return f"{headline} {result.metrics[headline]:.3f}, loss {result.loss:.3f}"
        return f"loss {result.loss:.3f} ({self.objective.loss_label})"

    def _after_step(self, result: StepResult, window: ThroughputWindow) -> ThroughputWindow:
        """Logs, evaluates and checkpoints on the configured steps (a checkpoint after the evaluation of its step,
        so it carries the best-so-far and patience); returns the throughput window to go on with."""
        cfg, step = self.cfg, self.progress.step
        if result.finite and (step % cfg.trainer.log_every_n_steps == 0 or step in (1, cfg.trainer.max_steps)):
            self._log_step(result, window)
            self.progress.train_seconds += window.elapsed()
            window = ThroughputWindow()
        every = eval_every(cfg.eval.every_n_steps, cfg.trainer.max_steps)
        if every and step % every == 0 and step < cfg.trainer.max_steps:
            eval_started = time.time()
            self._evaluate()
            self.progress.stopped_early = self.keep_best.exhausted(self.progress)
            window.started += time.time() - eval_started  # evaluation time is not training time
        if cfg.trainer.save_every_n_steps and step % cfg.trainer.save_every_n_steps == 0:
            self.save_checkpoint()
        return window

    def _evaluate(self) -> dict:
        """Evaluates the model at this step; the best evaluation so far also keeps its weights in `best/`."""
        result = self.evaluator(self.model, self.progress.step)
        if self.keep_best.consider(self.progress, result):
            self._save_weights(self.run_dir / "best", best={"step": self.progress.step, "metric":
                                                            self.cfg.eval.best_metric, "value":
                                                            self.progress.best_value})
        self.last_eval = result
        return result

    def _stop_if_asked(self) -> None:
        """Every process learns whether any of them got SIGTERM/SIGINT, so all stop after the same step."""
        asked = self.stop.signal is not None
        if self.accelerator.num_processes > 1:
            flag = torch.tensor(float(asked), device=self.accelerator.device)
            asked = bool(self.accelerator.reduce(flag, "sum") > 0)
        if not asked:
            return
        name = signal.Signals(self.stop.signal).name if self.stop.signal else "a signal"
        if self.saved_step != self.progress.step and self.progress.step > 0:
            saved = f"saved {self.save_checkpoint()}"
        else:
            saved = "nothing new to save" + (f" (checkpoint at step {self.saved_step})" if self.saved_step else "")
        raise Preempted(f"stopped by {name} after step {self.progress.step}; {saved}")

    def train_step(self) -> StepResult:
        """One optimizer step over `trainer.gradient_accumulation_steps` micro-batches of the objective's loss."""
        accelerator, cfg = self.accelerator, self.cfg
        window = self.objective.prepare(
            self.model, [next(self.batches) for _ in range(cfg.trainer.gradient_accumulation_steps)])
        # accelerator.backward divides by the accumulation steps and DDP averages over processes: undo both, since
        # the objective's loss is already normalised by the window's global totals.
        loss_scale = len(window.batches) * accelerator.num_processes
        sums: dict[str, torch.Tensor] = {}
        for batch in window.batches:
            with accelerator.accumulate(self.model):
                loss, batch_sums = self.objective.loss(self.model, batch, window)
                accelerator.backward(loss * loss_scale)
            for key, value in batch_sums.items():
                sums[key] = sums[key] + value if key in sums else value
        grad_norm = accelerator.clip_grad_norm_(self.trainable, cfg.optim.max_grad_norm)
        metrics = self.objective.report({key: accelerator.reduce(value, "sum") for key, value in sums.items()},
                                        window)
        step_loss = metrics.pop("loss")
        finite = math.isfinite(step_loss) and (grad_norm is None or math.isfinite(float(grad_norm)))
        if finite or cfg.trainer.precision == "fp16":
            self.optimizer.step()  # fp16: the grad scaler itself skips non-finite gradients and lowers its scale
        if finite:
            self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        result = StepResult(
            loss=step_loss, metrics=metrics, grad_norm=grad_norm, finite=finite, frames=window.frames,
            positions=sum(int(b["attention_mask"].sum()) if "attention_mask" in b else b["input_ids"].numel()
                          for b in window.batches),
            slots=sum(b["input_ids"].numel() for b in window.batches))
        self._count(result)
        return result

    def _count(self, result: StepResult) -> None:
        """Moves the progress on by one step; too many non-finite steps in a row save the state and stop the run."""
        progress = self.progress
        progress.step += 1
        if result.finite:
            progress.bad_in_a_row = 0
            progress.last_loss = result.loss
            progress.first_loss = result.loss if progress.first_loss is None else progress.first_loss
        else:
            progress.skipped_steps += 1
            progress.bad_in_a_row += 1
            logger.warning(f"step {progress.step} skipped (loss {result.loss}, grad norm {result.grad_norm})")
            if progress.bad_in_a_row >= self.cfg.trainer.max_bad_steps:
                saved_to = self.save_checkpoint()
                raise TrainingError(
                    f"{progress.bad_in_a_row} non-finite steps in a row (last at step {progress.step}); the last "
                    f"good state is saved in {saved_to}; lower optim.lr, use trainer.precision=bf16/fp32 or check "
                    "the data")
        progress.supervised_frames += result.frames
        progress.positions += result.positions

    def _log_step(self, result: StepResult, window: ThroughputWindow) -> None:
        accelerator, step = self.accelerator, self.progress.step
        elapsed = max(window.elapsed(), 1e-9)
        frame_rate = self.processor.audio_tokenizer.config.frame_rate
        record = {"step": step, "loss": result.loss, **result.metrics,
                  "grad_norm": float(result.grad_norm) if result.grad_norm is not None else None,
                  "lr": self.scheduler.get_last_lr()[0], "supervised_frames_per_s": window.frames / elapsed,
                  "audio_seconds_per_s": window.frames / frame_rate / elapsed,
                  "tokens_per_s": window.positions * accelerator.num_processes / elapsed,
                  "padding_share": 1 - window.positions / max(window.slots, 1),
                  "peak_memory_gb": peak_memory_gb(accelerator.device),
                  "skipped_steps": self.progress.skipped_steps, "elapsed_s": round(time.time() - self.started, 3)}
        if self.peak_flops:
            peak = self.peak_flops * accelerator.num_processes
            record["mfu"] = self.flops_per_token * record["tokens_per_s"] / peak
        if self.metrics:
            self.metrics.log(record)
        accelerator.log({k: v for k, v in record.items() if isinstance(v, (int, float))}, step=step)

    def save_checkpoint(self) -> Path:
        self.progress.wall_seconds = time.time() - self.started
        trainer_state = {"signature": self.signature, **self.resume_record, "state": asdict(self.progress),
                         "data_position": self.batches.state()}
        folder = save_checkpoint(self.accelerator, self.run_dir, self.progress.step, self.model, self.optimizer,
                                 self.scheduler, trainer_state, self.cfg.trainer.keep_last_n, self.uses_deepspeed)
        self.saved_step = self.progress.step
        return folder

    # ---- finish ------------------------------------------------------------------------------------------------
    def finish(self) -> dict:
        """Saves the final weights (`adapter/` or `model/`), evaluates them and writes `run_summary.json`."""
        accelerator, progress, data = self.accelerator, self.progress, self.data
        accelerator.wait_for_everyone()
        self._save_weights(self.run_dir / ("model" if self.cfg.peft.type == "none" else "adapter"))
        evaluated = self.last_eval is not None and self.last_eval["step"] == progress.step  # stopped early
        final_eval = dict(self.last_eval) if evaluated else self._final_evaluation()
        summary = {"steps": progress.step, "first_loss": progress.first_loss, "final_loss": progress.last_loss,
                   "conversations": len(data.training), "held_out": len(data.validation),
                   "skipped_rows": data.skipped, "skipped_steps": progress.skipped_steps, "clips": data.clips,
                   "stopped_early": progress.stopped_early, "best": self._best_summary(),
                   "longest_clip_frames": longest_clip_frames(data.table.clips)}
        if not self.is_main:
            return summary
        train_seconds = max(progress.train_seconds, 1e-9)
        frame_rate = self.processor.audio_tokenizer.config.frame_rate
        summary.update({
            "samples": final_eval.pop("samples", []),
            **{key: value for key, value in final_eval.items() if key != "step"},
            "wall_s": round(time.time() - self.started, 1), "train_s": round(train_seconds, 1),
            "peak_memory_gb": round(peak_memory_gb(accelerator.device), 3),
            "tokens_per_s": round(progress.positions * accelerator.num_processes / train_seconds, 1),
            "audio_seconds_per_s": round(progress.supervised_frames / frame_rate / train_seconds, 2),
        })
        if self.metrics:
            self.metrics.close()
        atomic.write_text(self.run_dir / "run_summary.json", json.dumps(summary, indent=2))
        losses = f"loss {progress.first_loss:.3f} -> {progress.last_loss:.3f} ({self.objective.loss_label})" \
            if progress.last_loss is not None else "no finite loss"
        headline = getattr(self.objective, "headline", None)
        logged = [r[headline] for r in _jsonl(self.run_dir / "metrics.jsonl") if headline and headline in r]
        if logged:
            losses = f"{headline} {logged[0]:.3f} -> {logged[-1]:.3f}, {losses}"
        weights = self.run_dir / ("model" if self.cfg.peft.type == "none" else "adapter")
        best = summary["best"]
        kept = f"; best {best['metric']} {best['value']:.4g} at step {best['step']} in best/" if best else ""
        logger.info(f"done in {summary['wall_s']} s, {losses}; weights in {weights}, {len(summary['samples'])} "
                    f"samples in {self.run_dir / 'samples'}{kept}")
        return summary

    def _final_evaluation(self) -> dict:
        """The last evaluation, which Ctrl-C or SIGTERM stop at once: the final weights are saved by then."""
        weights = self.run_dir / ("model" if self.cfg.peft.type == "none" else "adapter")
        with self.stop.raising():
            try:
                return self._evaluate()
            except KeyboardInterrupt:
                raise StoppedInFinalEvaluation(
                    f"stopped during the final evaluation; the trained weights are saved in {weights} (no "
                    f"run_summary.json); evaluate them with: higgs-eval model={self.cfg.model.name_or_path} "
                    f"adapter={weights} list=builtin:demo-eval (or your list)") from None

    def _save_weights(self, folder: Path, best: dict | None = None) -> None:
        """The trained weights as inference loads them (a PEFT adapter, or the full model and its processor); every
        process calls it, since under ZeRO-3 they all take part in gathering the sharded weights."""
        gathered = self.accelerator.get_state_dict(self.model) if self.uses_deepspeed else None
        if not self.is_main:
            return
        full = self.cfg.peft.type == "none"
        with atomic.atomic_output(folder) as partial:
            self.accelerator.unwrap_model(self.model).save_pretrained(
                partial, **({"state_dict": gathered} if gathered is not None else {}))
            if full:
                self.processor.save_pretrained(partial)
            if best is not None:
                (partial / "best.json").write_text(json.dumps(best, indent=2))

    def _best_summary(self) -> dict | None:
        """The best evaluation: its step and metrics (eval.jsonl's line of that step)."""
        progress = self.progress
        if progress.best_step is None:
            return None
        line = next((json.loads(line) for line in (self.run_dir / "eval.jsonl").read_text().splitlines()
                     if json.loads(line)["step"] == progress.best_step), {}) if self.is_main else {}
        return {"step": progress.best_step, "metric": self.cfg.eval.best_metric, "value": progress.best_value,
                "weights": str(self.run_dir / "best"),
                **{k: v for k, v in line.items() if isinstance(v, (int, float)) and k != "step"}}

    def cleanup(self) -> None:
        self.accelerator.end_training()  # also tears the process group down, before the interpreter exits


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


class Preempted(TrainingError):
    """SIGTERM or SIGINT stopped the run at a step boundary; its state is in a checkpoint."""


class StoppedInFinalEvaluation(TrainingError):
    """Ctrl-C or SIGTERM during the final evaluation: training is done and saved, the evaluation is not."""


class StopRequests:
    """SIGTERM (what cloud schedulers send before they kill) and SIGINT (Ctrl-C) ask the run to stop; the loop
    honours it at the next step boundary. A second Ctrl-C stops at once."""

    def __init__(self):
        self.signal: int | None = None

    def _ask(self, signum, frame) -> None:
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal = signum

    @staticmethod
    def _interrupt(signum, frame) -> None:
        raise KeyboardInterrupt

    def raising(self):
        """SIGTERM and SIGINT interrupt at once (where nothing is left to save at a step boundary)."""
        return self._handled_by(self._interrupt)

    def installed(self):
        """SIGTERM and SIGINT ask the loop to stop at its next step boundary."""
        return self._handled_by(self._ask)

    @staticmethod
    @contextlib.contextmanager
    def _handled_by(handler):
        if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
            yield
            return
        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for sig, before in previous.items():
                signal.signal(sig, before)


def batch_line(trainer: TrainerConfig, objective: ObjectiveConfig) -> str:
    """What one micro-batch holds, per process ("2 rows", "2 pairs", "2 prompts x 8 samples each"), and how many
    make a step."""
    held = objective.batch_unit(trainer.batch_size) if trainer.max_tokens_per_batch is None else \
        f"up to {trainer.max_tokens_per_batch} tokens{' packed' if trainer.packing else ''}"
    return f"{held} per micro-batch and process, {trainer.gradient_accumulation_steps} micro-batch(es) per step"


def train(cfg: RunConfig | DictConfig, run_dir: Path) -> dict:
    """Runs the configured job and returns its summary (also written to `run_summary.json`); a run that already
    finished returns its summary as it is. A composed config is checked and typed first."""
    cfg = typed(cfg)
    quiet_other_ranks()
    with hold_run_dir(run_dir) if is_main_process() else contextlib.nullcontext():
        recipe = FineTuneRecipe(cfg, run_dir)
        try:
            recipe.setup()
            recipe.train()
            return recipe.finish()
        except RunFinished as finished:
            logger.info(str(finished))
            summary = recipe.run_dir / "run_summary.json"
            return json.loads(summary.read_text()) if recipe.is_main else {}
        finally:
            recipe.cleanup()
