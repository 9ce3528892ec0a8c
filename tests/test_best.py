"""Training that keeps its best: periodic evaluation on by default, best/ holding the weights of the best
evaluation, early stopping after `trainer.early_stopping_patience` evaluations without improvement, and a resume
that goes on with the best-so-far and the patience it had."""

import json
import os
import signal

import pytest
import torch
from accelerate import Accelerator
from peft import PeftModel
from transformers import HiggsAudioV2ForConditionalGeneration

from higgs_train.config import run_config
from higgs_train.data.loader import build_training_data
from higgs_train.evaluate import evaluation as evaluation_module
from higgs_train.evaluate.validation import validation_metrics
from higgs_train.model.loading import load_processor
from higgs_train.train import recipe as recipe_module
from higgs_train.train.best import eval_every
from higgs_train.train.recipe import Preempted, train
from higgs_train.train.sources import resolve_sources

# Added to the real validation loss of the evaluation at each step: it improves until step 6, then worsens.
OFFSETS = {2: 3.0, 4: 2.0, 6: 1.0, 8: 2.0, 10: 3.0, 12: 4.0, 14: 5.0, 16: 6.0, 18: 7.0}
RUN = ["recipe=smoke", "trainer.max_steps=20", "eval.every_n_steps=2", "eval.num_samples=0",
       "trainer.early_stopping_patience=2", "trainer.save_every_n_steps=null", "optim.lr=1e-2"]


@pytest.fixture
def improving_then_worsening(monkeypatch):
    """The validation loss of each evaluation: the real one plus the step's offset."""
    step = {"now": 0}
    real_call = evaluation_module.Evaluator.__call__

    def call(self, model, at_step):
        step["now"] = at_step
        return real_call(self, model, at_step)

    def offset_loss(*args, **kwargs):
        result = validation_metrics(*args, **kwargs)
        return {**result, "val_loss": result["val_loss"] + OFFSETS.get(step["now"], 0.0)}

    monkeypatch.setattr(evaluation_module.Evaluator, "__call__", call)
    monkeypatch.setattr(evaluation_module, "validation_metrics", offset_loss)


def _every(cfg) -> int | None:
    return eval_every(cfg.eval.every_n_steps, cfg.trainer.max_steps)


def test_periodic_evaluation_is_on_by_default_every_tenth_of_the_run(compose_config):
    assert _every(compose_config("recipe=voice_clone_lora", "data.path=x.jsonl")) == 200
    assert _every(compose_config("recipe=voice_clone_lora", "data.path=x.jsonl", "trainer.max_steps=100")) == 50


@pytest.mark.parametrize("run", [["recipe=voice_clone_lora", "data.path=x.jsonl", "trainer.max_steps=30"],
                                 ["recipe=dpo_lora", "trainer.max_steps=10"],
                                 ["recipe=smoke", "trainer.max_steps=7", "eval.every_n_steps=auto"]])
def test_a_short_run_is_evaluated_at_its_end_only(compose_config, run):
    """A 10-step DPO run evaluated at every step, a 30-step one spent a sixth of its time evaluating."""
    assert _every(compose_config(*run)) is None
    assert _every(compose_config("recipe=smoke", "eval.every_n_steps=null")) is None


@pytest.mark.slow
def test_early_stopping_stops_at_the_expected_step_and_best_reproduces_the_best_validation_loss(
        improving_then_worsening, compose_config, tmp_path, tiny_checkpoint, caplog):
    caplog.set_level("INFO", logger="higgs_train")
    run_dir = tmp_path / "run"
    cfg = compose_config(*RUN)
    summary = train(cfg, run_dir)
    # best at step 6; steps 8 and 10 do not improve on it: patience 2 stops the run after the evaluation of step 10
    assert summary["steps"] == 10 and summary["stopped_early"] is True
    assert [line.getMessage() for line in caplog.records if "early stopping" in line.getMessage()] == [
        f"early stopping at step 10: val_loss has not improved for 2 evaluations (best {summary['best']['value']:.4g} "
        "at step 6, its weights in best/)"]
    evaluations = [json.loads(line) for line in (run_dir / "eval.jsonl").read_text().splitlines()]
    assert [e["step"] for e in evaluations] == [2, 4, 6, 8, 10]
    assert summary["best"]["step"] == 6 and json.loads((run_dir / "best" / "best.json").read_text())["step"] == 6

    processor = load_processor(str(tiny_checkpoint))
    base = HiggsAudioV2ForConditionalGeneration.from_pretrained(tiny_checkpoint)
    best = PeftModel.from_pretrained(base, run_dir / "best").eval()
    _, plan = resolve_sources(run_config(cfg))
    data = build_training_data(plan, processor, base.config)
    size = cfg.eval.batch_size
    batches = [data.collator([data.validation[j] for j in range(i, min(i + size, len(data.validation)))])
               for i in range(0, len(data.validation), size)]
    with torch.no_grad():
        again = validation_metrics(Accelerator(cpu=True), best, batches, base.config)
    assert again["val_loss"] + OFFSETS[6] == summary["best"]["value"] == evaluations[2]["val_loss"]


@pytest.mark.slow
def test_a_resumed_run_goes_on_with_its_best_and_its_patience(improving_then_worsening, compose_config, tmp_path,
                                                             monkeypatch):
    run_dir = tmp_path / "run"
    real_step = recipe_module.FineTuneRecipe.train_step

    def preempted_after_step_7(self):
        result = real_step(self)
        if self.progress.step == 7:
            os.kill(os.getpid(), signal.SIGTERM)  # as a scheduler does; the run saves at the next step boundary
        return result

    monkeypatch.setattr(recipe_module.FineTuneRecipe, "train_step", preempted_after_step_7)
    with pytest.raises(Preempted):
        train(compose_config(*RUN), run_dir)
    monkeypatch.setattr(recipe_module.FineTuneRecipe, "train_step", real_step)
    state = json.loads((run_dir / "checkpoints" / "step_00000007" / "trainer_state.json").read_text())["state"]
    assert (state["best_step"], state["evals_since_best"]) == (6, 0)
    summary = train(compose_config(*RUN, "resume=auto"), run_dir)
    assert summary["steps"] == 10 and summary["stopped_early"] and summary["best"]["step"] == 6


class _OneProcess:
    is_main_process, num_processes = True, 1


@pytest.mark.parametrize("metric", ["stop_rate", "loop_share"])
def test_best_cannot_be_won_by_stopping_early(compose_config, metric, caplog):
    """The DPO recipe ranks by stop_rate: a model that stops at 0.55 of the expected length stops "best" of all, and
    was kept. Out of eval.best_duration_band it is no candidate; the better-length evaluations are ranked."""
    from higgs_train.evaluate.metrics import direction
    from higgs_train.train.best import KeepBest
    from higgs_train.train.recipe import TrainingProgress

    caplog.set_level("INFO", logger="higgs_train")
    keep, progress = KeepBest(compose_config("recipe=dpo_lora", f"eval.best_metric={metric}").eval, None,
                              direction(metric), _OneProcess()), TrainingProgress()
    good = 1.0 if metric == "stop_rate" else 0.0
    evaluations = [{"step": 1, metric: good, "duration_ratio": 0.55},      # stops early: "perfect" on one metric
                   {"step": 2, metric: 0.5, "duration_ratio": 1.0},
                   {"step": 3, metric: 0.5, "duration_ratio": 2.0},       # runs on
                   {"step": 4, metric: (good + 0.5) / 2, "duration_ratio": 1.1}]
    kept = [keep.consider(progress, e) for e in evaluations]
    assert kept == [False, True, False, True] and progress.best_step == 4
    assert "step 1: " in caplog.text and "outside eval.best_duration_band [0.8, 1.25]" in caplog.text
    val_loss = KeepBest(compose_config("recipe=smoke").eval, None, False, _OneProcess())  # no length to game
    assert val_loss.consider(TrainingProgress(), {"step": 1, "val_loss": 2.0, "duration_ratio": 0.3})


@pytest.mark.parametrize("band", ["[1.2,2]", "[0.8]", "[0,1.2]", "fast"])
def test_a_duration_band_that_admits_no_length_is_refused(compose_config, band):
    from higgs_train.config import ConfigError, run_config

    with pytest.raises(ConfigError, match=r"eval.best_duration_band=.* must be \[low, high\] around 1"):
        run_config(compose_config("recipe=smoke", f"eval.best_duration_band={band}"))
