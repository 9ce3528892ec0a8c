"""Reports speak the objective's language: a DPO run shows its margin, accuracy and chosen/rejected log-probs, a GRPO
run its reward and KL, each named; cross-entropy only where it is cross-entropy; the console leads with GRPO's reward
and prints an evaluation as words, not as a Python dict."""

import json
from types import SimpleNamespace

import pytest
from omegaconf import OmegaConf

from higgs_train.config.files import compose_config
from higgs_train.evaluate.evaluation import readable
from higgs_train.evaluate.report import write_report
from higgs_train.train.recipe import FineTuneRecipe, StepResult

STEPS = {
    "dpo_smoke": {"loss": 0.69, "reward_margin": 0.1, "chosen_reward": 0.05, "rejected_reward": -0.05,
                  "preference_accuracy": 0.75, "chosen_logp": -310.0, "rejected_logp": -330.0},
    "grpo_smoke": {"loss": 0.0, "reward": 0.4, "reward_stopped": 0.5, "reward_duration_error": 0.3, "kl": 0.01},
}


def _run_dir(tmp_path, recipe):
    run_dir = tmp_path / recipe
    (run_dir / ".hydra").mkdir(parents=True)
    OmegaConf.save(compose_config([f"recipe={recipe}"]), run_dir / ".hydra" / "config.yaml")
    (run_dir / "metrics.jsonl").write_text("".join(
        json.dumps({"step": step, **{k: v * step for k, v in STEPS[recipe].items()}}) + "\n" for step in (1, 2, 3)))
    (run_dir / "eval.jsonl").write_text(json.dumps({"step": 3, "val_loss": 7.1, "stop_rate": 0.5}) + "\n")
    return run_dir


@pytest.mark.parametrize(("recipe", "titles", "data"), [
    ("dpo_smoke", ["DPO loss: -log sigmoid(beta x reward margin)", "DPO rewards (beta x log-ratio to the reference) "
                   "and preference accuracy", "Policy log-probabilities of the chosen and rejected clips"],
     "pairs builtin:demo-pairs"),
    ("grpo_smoke", ["GRPO reward: mean over the step's answers", "GRPO: KL to the reference"],
     "prompts from builtin:demo"),
])
def test_a_preference_run_report_plots_and_names_its_own_measures(tmp_path, recipe, titles, data):
    page = write_report(_run_dir(tmp_path, recipe)).read_text()
    for title in titles:
        assert f'alt="{title}' in page
    assert "Audio loss: mean cross-entropy" not in page  # the objective's loss is not a cross-entropy
    assert 'alt="validation cross-entropy"' in page  # the validation loss is one, plotted on its own
    assert f"<th>data</th><td class='text'>{data}" in page and "None" not in page.split("Run settings")[1][:600]


def test_the_console_leads_a_grpo_step_with_its_reward_and_shows_an_evaluation_as_words():
    result = StepResult(loss=0.0, metrics={"reward": 0.4132}, grad_norm=None, finite=True, frames=1, positions=1,
                        slots=1)
    grpo = SimpleNamespace(objective=SimpleNamespace(headline="reward", loss_label="GRPO, per answer"))
    assert FineTuneRecipe._progress_text(grpo, result) == "reward 0.413, loss 0.000"
    sft = SimpleNamespace(objective=SimpleNamespace(loss_label="mean over codebooks"))
    assert FineTuneRecipe._progress_text(sft, result) == "loss 0.000 (mean over codebooks)"
    shown = readable({"step": 3, "val_loss": 7.0912, "stop_rate": 0.5, "samples": [{}],
                      "not_measured": {"wer": "not measured (set eval.asr_model)"}})
    assert shown == "val_loss 7.091, stop_rate 0.5, wer not measured (set eval.asr_model)"
