"""DPO through the objective seam: the per-conversation, per-codebook log-probabilities it is built on (one mask
with the supervised loss), its loss at step 0, one step that raises the margin, the reference that really is the
base, bad pairs as one clear line each, and `recipe=dpo_smoke` end to end."""

import json
import math
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from accelerate import Accelerator
from peft import PeftModel
from transformers import HiggsAudioV2ForConditionalGeneration

from higgs_train.config import ConfigError, run_config
from higgs_train.config.groups import DataConfig
from higgs_train.data.collator import ConversationCollator
from higgs_train.data.conversations import DataError
from higgs_train.data.pair_table import PairCollator, PairDataset, open_pairs, pairs_from_jsonl
from higgs_train.model.loss import IGNORE_INDEX, MODEL_INPUTS, audio_loss_terms, sequence_logprobs
from higgs_train.objectives import build_objective
from higgs_train.train.sources import resolve_sources


class PositionLogits(torch.nn.Module):
    """A stand-in model whose logits depend on the position alone (a fixed random table), never on the inputs: what
    `sequence_logprobs` sums is then decided by its mask alone."""

    def __init__(self, config, length=4096):
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.table = torch.randn(length, config.num_codebooks * config.codebook_size, generator=generator)

    def forward(self, input_ids, logits_to_keep, **_):
        logits = self.table[: input_ids.shape[1]].expand(input_ids.shape[0], -1, -1)
        return type("Out", (), {"logits": logits[logits_to_keep]})()


@pytest.fixture(scope="module")
def small_pairs(demo_dir, tmp_path_factory):
    """The demo's first two pairs (each clip chosen over itself with trailing silence) in a folder of their own."""
    folder = tmp_path_factory.mktemp("pairs")
    lines = (demo_dir / "pairs.jsonl").read_text().splitlines()[:2]
    for line in lines:
        for key in ("chosen", "rejected"):
            clip = json.loads(line)[key]
            (folder / clip).parent.mkdir(exist_ok=True)
            shutil.copy(demo_dir / clip, folder / clip)
    shutil.copy(demo_dir / "speakers.json", folder / "speakers.json")
    (folder / "pairs.jsonl").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture(scope="module")
def pair_batch(small_pairs, processor, model_config):
    """The two pairs collated as DPO collates them (chosen, rejected, chosen, rejected; right padding)."""
    pairs = open_pairs(small_pairs / "pairs.jsonl", processor.audio_tokenizer, DataConfig(min_seconds=0.3,
                                                                                           max_seconds=30.0))
    dataset = PairDataset(pairs, np.arange(2))
    collator = ConversationCollator(processor.tokenizer, model_config)
    return [dataset[0], dataset[1]], PairCollator(collator)


def _model_inputs(batch):
    return {k: v for k, v in batch.items() if k in (*MODEL_INPUTS, "audio_labels", "labels")}


def test_sequence_logprobs_sum_exactly_the_supervised_targets(pair_batch, model_config):
    items, collate = pair_batch
    batch = collate(items)
    model = PositionLogits(model_config)
    sums, counts = sequence_logprobs(model, batch, model_config)
    assert sums.shape == counts.shape == (4, model_config.num_codebooks)
    supervised = (batch["audio_labels"] != IGNORE_INDEX).sum(dim=1)  # per row and codebook
    assert torch.equal(counts, supervised.float())
    # The supervised loss is the same sum: one mask for both.
    terms = audio_loss_terms(model, batch, model_config)
    torch.testing.assert_close(-sums.sum(0), terms.sums)

    def perturbed(change) -> torch.Tensor:
        changed = {k: v.clone() for k, v in batch.items()}
        change(changed)
        return sequence_logprobs(model, changed, model_config)[0]

    audio_rows = batch["audio_input_ids_mask"]
    audio_positions = (batch["input_ids"] == model_config.audio_token_id) | \
        (batch["input_ids"] == model_config.audio_delay_token_id)
    prompt_text = (batch["labels"] == IGNORE_INDEX) & (batch["attention_mask"] == 1) & ~audio_positions
    unsupervised_frames = audio_rows & (batch["audio_labels"] == IGNORE_INDEX).all(dim=-1)
    padding = batch["attention_mask"] == 0
    assert prompt_text.any() and unsupervised_frames.any() and padding.any()

    def prompt(b):
        b["input_ids"][prompt_text] = 7

    def reference_and_filler(b):  # reference-clip frames, BOS/delay frames and what follows each stream-EOS
        b["audio_input_ids"][unsupervised_frames] = 3
        b["audio_input_ids"][(b["audio_labels"] == IGNORE_INDEX) & audio_rows[..., None]] = 5

    def pad(b):
        b["input_ids"][padding] = 9

    for change in (prompt, reference_and_filler, pad):
        assert torch.equal(perturbed(change), sums)

    def one_target(b):
        row, frame, book = (b["audio_labels"] != IGNORE_INDEX).nonzero()[10].tolist()
        b["audio_labels"][row, frame, book] = (b["audio_labels"][row, frame, book] + 1) % 1024

    assert not torch.equal(perturbed(one_target), sums)


def test_a_conversation_scores_the_same_alone_and_padded_beside_a_longer_one(pair_batch, tiny_checkpoint,
                                                                            model_config):
    items, collate = pair_batch
    model = HiggsAudioV2ForConditionalGeneration.from_pretrained(tiny_checkpoint).eval()
    together = collate(items)
    with torch.no_grad():
        both = sequence_logprobs(model, _model_inputs(together), model_config)[0]
        alone = sequence_logprobs(model, _model_inputs(collate.collator([items[0]["chosen"]])), model_config)[0]
    torch.testing.assert_close(both[0], alone[0], atol=1e-3, rtol=1e-5)
    assert together["input_ids"].shape[1] > collate.collator([items[0]["chosen"]])["input_ids"].shape[1]


def _objective(cfg_overrides, compose_config, tiny_checkpoint):
    from higgs_train.model.trainable import build_trainable_model

    cfg = run_config(compose_config("recipe=dpo_smoke", *cfg_overrides))
    torch.manual_seed(0)
    model = build_trainable_model(cfg, str(tiny_checkpoint), "sdpa")
    accelerator = Accelerator(cpu=True)
    return cfg, model, build_objective(cfg, accelerator, model, model.config, str(tiny_checkpoint))


def test_at_step_0_the_loss_is_ln2_and_one_step_raises_the_margin(pair_batch, compose_config, tiny_checkpoint):
    items, collate = pair_batch
    cfg, model, objective = _objective(["peft.modules_to_save=[audio_lm_head]"], compose_config, tiny_checkpoint)
    batch = collate(items[:1])
    window = objective.prepare(model, [batch])
    loss, sums = objective.loss(model, batch, window)
    report = objective.report(sums, window)
    assert report["loss"] == pytest.approx(math.log(2), abs=1e-5) and report["reward_margin"] == 0.0
    assert report["chosen_logp"] > report["rejected_logp"] - 1e9  # both real sums of log-probabilities
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    loss.backward()
    optimizer.step()
    after = objective.report(objective.loss(model, batch, window)[1], window)
    assert after["reward_margin"] > 0 and after["loss"] < math.log(2)


def test_precomputed_reference_is_the_initial_models_and_gives_the_same_step_0(small_pairs, compose_config,
                                                                              tiny_checkpoint, processor, tmp_path):
    shutil.copytree(small_pairs, tmp_path / "demo")
    cfg, model, objective = _objective([f"data.pairs={tmp_path / 'demo' / 'pairs.jsonl'}", "trainer.batch_size=2",
                                        "objective.reference=precomputed", "eval.val_size=0"], compose_config,
                                       tiny_checkpoint)
    data = objective.training_data(resolve_sources(cfg)[1], processor)
    batch = next(iter(data.dataloader))
    assert batch["reference_logps"].shape == (cfg.trainer.batch_size, 2, 2)
    window = objective.prepare(model, [batch])
    report = objective.report(objective.loss(model, batch, window)[1], window)
    assert report["loss"] == pytest.approx(math.log(2), abs=1e-5)
    assert list((tmp_path / "demo" / "codes").glob("*/pairs-*/reference-*.npy"))  # kept beside the pairs


@pytest.mark.parametrize(("line", "says"), [
    ({"messages": "PROMPT", "chosen": "clips/alice_00.wav", "rejected": "clips/alice_00.wav"},
     "chosen and rejected are the same clip"),
    ({"messages": [{"role": "system", "content": [{"type": "text", "text": "x"}]}], "chosen": "clips/alice_00.wav",
      "rejected": "clips/alice_01.wav"}, "the prompt is empty"),
    ({"messages": "PROMPT", "chosen": "clips/alice_00.wav", "rejected": "clips/quiet.wav"}, "silent audio"),
    ({"messages": "PROMPT", "chosen": "clips/alice_00.wav", "rejected": "clips/none.wav"}, "missing audio file"),
    ({"messages": "PROMPT", "chosen": "clips/alice_00.wav"}, "'rejected' must be the path of an audio file"),
])
def test_bad_pairs_are_one_clear_line(line, says, demo_dir, tmp_path, processor):
    import soundfile as sf

    folder = tmp_path / "pairs"
    shutil.copytree(demo_dir / "clips", folder / "clips")
    sf.write(folder / "clips" / "quiet.wav", np.zeros(24000, np.float32), 24000)
    prompt = json.loads((demo_dir / "pairs.jsonl").read_text().splitlines()[0])["messages"]
    line = {**line, "messages": prompt} if line["messages"] == "PROMPT" else line
    (folder / "pairs.jsonl").write_text(json.dumps(line) + "\n")
    with pytest.raises(DataError, match=says) as raised:
        pairs_from_jsonl(folder / "pairs.jsonl", processor.audio_tokenizer, DataConfig())
    assert str(raised.value).startswith(f"{folder / 'pairs.jsonl'}:1: ") and len(str(raised.value).splitlines()) == 1


def test_a_dpo_recipe_without_pairs_is_one_line(compose_config):
    with pytest.raises(ConfigError, match=r"objective=dpo needs data.pairs: a folder written by `higgs-prep pairs`"):
        run_config(compose_config("recipe=dpo_lora"))
    with pytest.raises(ConfigError, match="full fine-tuning has none; use objective.reference=precomputed"):
        run_config(compose_config("recipe=dpo_smoke", "peft=none"))


@pytest.mark.slow
def test_dpo_smoke_runs_end_to_end_and_its_adapter_reference_is_the_base(tmp_path, tiny_checkpoint, demo_dir,
                                                                        pair_batch, model_config):
    run_dir = tmp_path / "run"
    result = subprocess.run([sys.executable, "-m", "higgs_train.commands.train", "recipe=dpo_smoke",
                             f"hydra.run.dir={run_dir}"],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert records[0]["loss"] == pytest.approx(math.log(2), abs=1e-5)
    assert records[-1]["loss"] < records[0]["loss"] and records[-1]["preference_accuracy"] > 0.5
    assert {"reward_margin", "chosen_reward", "rejected_reward", "chosen_logp", "rejected_logp"} <= records[-1].keys()
    base = HiggsAudioV2ForConditionalGeneration.from_pretrained(tiny_checkpoint).eval()
    items, collate = pair_batch
    batch = _model_inputs(collate(items))
    with torch.no_grad():
        expected = sequence_logprobs(base, batch, model_config)[0]
        tuned = PeftModel.from_pretrained(HiggsAudioV2ForConditionalGeneration.from_pretrained(tiny_checkpoint),
                                          run_dir / "adapter").eval()
        assert not torch.equal(sequence_logprobs(tuned, batch, model_config)[0], expected)
        with tuned.disable_adapter():
            assert torch.equal(sequence_logprobs(tuned, batch, model_config)[0], expected)


@pytest.mark.slow
def test_a_resumed_dpo_run_gives_the_uninterrupted_losses(compose_config, tmp_path, demo_dir):
    from higgs_train.train.recipe import train

    run = ["recipe=dpo_smoke", "eval.every_n_steps=null", "eval.num_samples=0", "trainer.save_every_n_steps=5"]
    train(compose_config(*run), tmp_path / "whole")
    train(compose_config(*run, "trainer.max_steps=5"), tmp_path / "resumed")
    train(compose_config(*run, "resume=auto"), tmp_path / "resumed")
    losses = [[json.loads(line)["loss"] for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
              for name in ("whole", "resumed")]
    assert len(losses[0]) == 10 and losses[1] == losses[0]
