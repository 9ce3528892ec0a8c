"""GRPO through the same seam: advantages within a group, a step that moves toward the better-rewarded answer, the KL
term alone when every answer scores the same, judges that fail without ending the run, and `recipe=grpo_smoke`."""

import json
import math
import subprocess
import sys

import pytest
import torch
from accelerate import Accelerator

from higgs_train.config import ConfigError, run_config
from higgs_train.evaluate import judge_answer
from higgs_train.model.loss import MODEL_INPUTS, per_conversation, target_logprobs
from higgs_train.model.trainable import build_trainable_model
from higgs_train.objectives import build_objective
from higgs_train.objectives import grpo as grpo_module
from higgs_train.train.sources import resolve_sources

OVERRIDES = ["recipe=grpo_smoke", "objective.samples_per_prompt=2", "trainer.batch_size=1",
             "peft.modules_to_save=[audio_lm_head]"]


@pytest.fixture
def grpo(compose_config, tiny_checkpoint, processor, demo_dir):
    """(cfg, model, objective, a prompt) for GRPO on the tiny kit."""

    def make(*overrides):
        cfg = run_config(compose_config(*OVERRIDES, *overrides))
        torch.manual_seed(0)
        model = build_trainable_model(cfg, str(tiny_checkpoint), "sdpa")
        objective = build_objective(cfg, Accelerator(cpu=True), model, model.config, str(tiny_checkpoint))
        _, plan = resolve_sources(cfg)
        data = objective.training_data(plan, processor)
        return cfg, model, objective, data.training[0]

    return make


def _fixed_answers(monkeypatch, answers):
    """Generation returns these (codes, stopped) answers, group after group."""
    monkeypatch.setattr(grpo_module, "generate_codes", lambda model, collator, prompts, cfg: answers[:len(prompts)])


def _answers(prompt):
    target = prompt["messages"][-1]["content"][0]["codes"]
    other = torch.randint(0, 1024, (target.shape[0], 70), generator=torch.Generator().manual_seed(3))
    return [(target.clone(), True), (other, False)]  # the clip, stopping / other codes, running on


def _logps(model, batch, config):
    scored = target_logprobs(model, {k: v for k, v in batch.items() if k in (*MODEL_INPUTS, "audio_labels")}, config)
    return per_conversation(scored.logprobs, scored).sum(-1)


def test_the_better_rewarded_answer_gains_log_probability_after_one_step(grpo, monkeypatch):
    cfg, model, objective, prompt = grpo("objective.kl_beta=0.0")
    _fixed_answers(monkeypatch, _answers(prompt))
    window = objective.prepare(model, [[prompt]])
    batch = window.batches[0]
    assert batch["advantages"].tolist() == pytest.approx([1 / math.sqrt(2), -1 / math.sqrt(2)], abs=1e-3)
    with torch.no_grad():
        before = _logps(model, batch, model.config)
    loss, sums = objective.loss(model, batch, window)
    loss.backward()
    torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-2).step()
    with torch.no_grad():
        after = _logps(model, batch, model.config)
    assert after[0] > before[0] and after[1] < before[1]
    report = objective.report(sums, window)
    assert report["reward_stopped"] == 0.5  # the default reward: stopped + duration_error + loop_share, each weighted 1
    assert report["reward"] == pytest.approx(0.5 + report["reward_duration_error"] + report["reward_loop_share"])
    assert report["clip_fraction"] == 0.0 and 0 < report["generation_share"] <= 1


def test_with_the_same_reward_for_every_answer_only_the_kl_term_moves_the_model(grpo, monkeypatch):
    cfg, model, objective, prompt = grpo("objective.kl_beta=0.5")
    with torch.no_grad():  # the policy away from its reference: adapters that are not zero
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.05)
    target = prompt["messages"][-1]["content"][0]["codes"]
    _fixed_answers(monkeypatch, [(target.clone(), True), (target[:, :-3].clone(), True)])
    monkeypatch.setattr(grpo_module, "rewards_of", lambda record: {"stopped": 1.0, "duration_error": 0.5})
    window = objective.prepare(model, [[prompt]])
    batch = window.batches[0]
    assert batch["advantages"].abs().max() == 0
    trained = [p for p in model.parameters() if p.requires_grad]
    objective.loss(model, batch, window)[0].backward()
    grpo_gradient = [p.grad.clone() for p in trained]
    for p in trained:
        p.grad = None
    inputs = {k: v for k, v in batch.items() if k in (*MODEL_INPUTS, "audio_labels")}
    scored = target_logprobs(model, inputs, model.config)
    delta = objective._reference(model, inputs) - scored.logprobs
    mask = scored.mask.float()
    kl = (torch.exp(delta) - delta - 1) * mask * 0.5
    (per_conversation(kl, scored) / per_conversation(mask, scored)).mean(dim=1).sum().div(2).backward()
    assert any(g.abs().max() > 0 for g in grpo_gradient)
    for mine, theirs in zip(grpo_gradient, (p.grad for p in trained)):
        torch.testing.assert_close(mine, theirs, atol=1e-6, rtol=1e-4)
    model.zero_grad()
    cfg, model, objective, prompt = grpo("objective.kl_beta=0.5")  # policy == reference: nothing moves at all
    monkeypatch.setattr(grpo_module, "rewards_of", lambda record: {"stopped": 1.0, "duration_error": 0.5})
    window = objective.prepare(model, [[prompt]])
    objective.loss(model, window.batches[0], window)[0].backward()
    assert all(p.grad is None or p.grad.abs().max() == 0 for p in model.parameters() if p.requires_grad)


def test_a_judge_that_raises_or_gives_nan_costs_that_answer_its_reward_and_is_counted(grpo, monkeypatch, caplog):
    cfg, model, objective, prompt = grpo()
    _fixed_answers(monkeypatch, _answers(prompt))
    real = judge_answer.measure
    calls = {"n": 0}

    def flaky(sample, judges, names):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("the ASR server went away")
        record = real(sample, judges, names)
        return {**record, "duration_error": float("nan")} if calls["n"] == 2 else record

    monkeypatch.setattr(judge_answer, "measure", flaky)
    window = objective.prepare(model, [[prompt]])
    assert window.info["reward"] == 0.0 and objective.failed_judgements == 2
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 2 and "the ASR server went away" in warned[0] and "lowest reward" in warned[1]
    assert objective.report(objective.loss(model, window.batches[0], window)[1], window)["judge_failures"] == 2


def test_grpo_config_mistakes_are_one_line(compose_config):
    with pytest.raises(ConfigError, match=r"objective.samples_per_prompt=1 must be an integer >= 2"):
        run_config(compose_config("recipe=grpo_smoke", "objective.samples_per_prompt=1"))
    with pytest.raises(ConfigError, match=r"objective.rewards has \['style'\]"):
        run_config(compose_config("recipe=grpo_smoke", "+objective.rewards.style=1"))


@pytest.mark.slow
def test_grpo_smoke_runs_end_to_end(tmp_path):
    run_dir = tmp_path / "run"
    result = subprocess.run([sys.executable, "-m", "higgs_train.commands.train", "recipe=grpo_smoke",
                             f"hydra.run.dir={run_dir}"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert {"reward", "reward_stopped", "reward_duration_error", "reward_spread_in_groups", "kl", "clip_fraction",
            "generation_share", "judge_failures"} <= records[0].keys()
    assert (run_dir / "adapter" / "adapter_config.json").is_file()


@pytest.mark.slow
def test_a_resumed_grpo_run_samples_and_trains_as_the_uninterrupted_one(compose_config, tmp_path, demo_dir):
    """The sampling RNG travels with the checkpoint: the resumed run draws the same groups."""
    from higgs_train.train.recipe import train

    run = ["recipe=grpo_smoke", "eval.every_n_steps=null", "eval.num_samples=0", "trainer.save_every_n_steps=2"]
    train(compose_config(*run), tmp_path / "whole")
    train(compose_config(*run, "trainer.max_steps=2"), tmp_path / "resumed")
    train(compose_config(*run, "resume=auto"), tmp_path / "resumed")
    records = [[{k: json.loads(line)[k] for k in ("loss", "reward", "reward_stopped", "kl")}
                for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
               for name in ("whole", "resumed")]
    assert len(records[0]) == 4 and records[1] == records[0]
