"""Training that keeps its best: after each evaluation, whether `eval.best_metric` improved on the best so far (the
caller says which way is better, so the keeper knows no metric; a sample metric counts only while the samples' mean
duration_ratio lies in `eval.best_duration_band`, since stop rate, silence or loops alone reward stopping early), and
whether `trainer.early_stopping_patience` evaluations have gone by without an improvement. The state lives in the
run's progress, so a checkpoint carries it and a resume goes on with it; the main process decides (sample metrics are
measured there) and every process gets its decision."""

from __future__ import annotations

import math

from accelerate.utils import broadcast_object_list

from higgs_train.config.generation import EvalConfig
from higgs_train.runtime.logs import NOTICE, logger

AUTO_MIN_STEPS = 50  # `auto` never evaluates more often than this: a short run trains, and is evaluated at its end


def eval_every(every_n_steps: int | str | None, max_steps: int) -> int | None:
    """`eval.every_n_steps`: a number of steps, null (at the end only), or auto (a tenth of the run, at least
    AUTO_MIN_STEPS apart, so evaluation's cost grows with the run and never takes a short one over)."""
    if every_n_steps != "auto":
        return every_n_steps
    every = max(AUTO_MIN_STEPS, max_steps // 10)
    return every if every < max_steps else None


class KeepBest:
    def __init__(self, eval: EvalConfig, patience: int | None, higher_is_better: bool, accelerator):
        """Ranks evaluations by `eval.best_metric` within `eval.best_duration_band`, the way the caller says is better
        (the keeper knows no metric); `patience`: trainer.early_stopping_patience."""
        self.metric, self.accelerator, self.higher_is_better = eval.best_metric, accelerator, higher_is_better
        self.patience = patience
        band = eval.best_duration_band
        # val_loss and val_accuracy score the held-out targets, not what the model says: no length to game
        self.band = tuple(band) if band and not self.metric.startswith("val_") else None
        self.warned = False

    def consider(self, progress, result: dict) -> bool:
        """Records the evaluation in `progress`; True when it is the best so far (its weights are to be kept)."""
        shared = [result.get(self.metric), result.get("duration_ratio")] if self.accelerator.is_main_process \
            else [None, None]
        if self.accelerator.num_processes > 1:
            broadcast_object_list(shared, from_process=0)
        value, ratio = shared
        if value is None or not math.isfinite(value):
            if not self.warned:
                logger.log(NOTICE, f"eval.best_metric={self.metric} is not measured in this run (no validation "
                                   "split, or no judge for it); best/ and early stopping are off")
                self.warned = True
            return False
        if self.band and ratio is not None and not self.band[0] <= ratio <= self.band[1]:
            logger.info(f"step {result['step']}: {self.metric} {value:.4g} is not a candidate for best/: its samples' "
                        f"duration_ratio {ratio:.2f} is outside eval.best_duration_band {list(self.band)} (a model "
                        "that stops too early or runs on must not win on one metric)")
            progress.evals_since_best += progress.best_value is not None
            return False
        best = progress.best_value
        improved = best is None or (value > best if self.higher_is_better else value < best)
        if improved:
            progress.best_value, progress.best_step, progress.evals_since_best = value, result["step"], 0
        else:
            progress.evals_since_best += 1
        return improved

    def exhausted(self, progress) -> bool:
        """Patience has run out: log the one line that says so."""
        if not self.patience or progress.evals_since_best < self.patience:
            return False
        logger.info(f"early stopping at step {progress.step}: {self.metric} has not improved for "
                    f"{progress.evals_since_best} evaluations (best {progress.best_value:.4g} at step "
                    f"{progress.best_step}, its weights in best/)")
        return True
