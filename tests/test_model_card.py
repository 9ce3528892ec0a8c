"""Every export carries a model card a stranger can use: the base model's id (never a cache path), the data, the
recipe's settings, the evaluation of the exported weights and how to load them; an export that replaces an earlier
one (checkpoint=best over the final weights) says so."""

import json

import pytest
from huggingface_hub import ModelCard

from higgs_train.commands.export import export
from higgs_train.config.files import compose_config
from higgs_train.train.recipe import train

RUN = ["recipe=smoke", "trainer.max_steps=4", "eval.every_n_steps=2", "eval.num_samples=1", "eval.max_new_tokens=20",
       "trainer.save_every_n_steps=null"]


@pytest.mark.slow  # a short training run, then two exports
def test_the_export_has_a_model_card_and_says_what_it_replaces(tmp_path, demo_dir, tiny_checkpoint, caplog):
    run_dir = tmp_path / "run"
    summary = train(compose_config(RUN), run_dir)
    caplog.set_level("INFO", logger="higgs_train")
    adapter = export(run_dir)
    card = ModelCard.load(adapter / "README.md")
    assert str(tiny_checkpoint) not in card.content and "`builtin:tiny`" in card.content
    assert card.data.library_name == "peft" and "higgs-audio" in card.data.tags
    final = json.loads((run_dir / "eval.jsonl").read_text().splitlines()[-1])
    assert "| step | val_loss |" in card.content and f"| {final['step']} | {final['val_loss']:.4g} |" in card.content
    assert "| lr | 0.002 (constant" in card.content and "| data | builtin:demo/train.jsonl |" in card.content
    assert f"{summary['conversations']} conversations trained on, 4 held out" in card.content
    assert f'PeftModel.from_pretrained(base, "{adapter}")' in card.content
    assert "replacing" not in caplog.text

    best_step = summary["best"]["step"]
    assert export(run_dir, checkpoint="best") == adapter
    assert (f"replacing the export in {adapter} (checkpoint=final) with checkpoint=best; give out=DIR to keep both"
            in caplog.text)
    card = ModelCard.load(adapter / "README.md").content
    assert f"step {best_step}" in card and f"| {best_step} | {summary['best']['val_loss']:.4g} |" in card


def test_a_hub_base_is_the_cards_base_model(tmp_path):
    from omegaconf import OmegaConf

    from higgs_train.commands.model_card import write_model_card

    cfg = OmegaConf.merge(compose_config(["recipe=dpo_smoke"]), {"model": {"name_or_path": "eustlb/higgs-v2"}})
    write_model_card(tmp_path, cfg, tmp_path / "run", "merged", None, tmp_path / "merged")
    card = ModelCard.load(tmp_path / "README.md")
    assert card.data.base_model == "eustlb/higgs-v2" and card.data.library_name == "transformers"
    assert "| data | pairs builtin:demo-pairs |" in card.content  # a DPO run's data is its pairs, never None
    assert "No evaluation was measured" in card.content
