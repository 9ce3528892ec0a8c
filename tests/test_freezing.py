"""Freeze presets for full fine-tuning: only the named part of the model learns, the rest stays as loaded."""

import subprocess
import sys

import pytest
from safetensors.torch import load_file
from transformers import HiggsAudioV2ForConditionalGeneration

from higgs_train.model.freezing import FreezeConfigError, apply_freeze
from higgs_train.train.recipe import train

AUDIO_PATH = ("audio_mlp", "audio_input_layernorm", "audio_post_attention_layernorm", "embed_audio_tokens",
              "audio_lm_head")


@pytest.mark.slow  # an end-to-end training run
def test_text_path_preset_trains_only_the_audio_path(compose_config, tmp_path, tiny_checkpoint, demo_dir):
    cfg = compose_config("recipe=smoke", "peft=none", "freeze=text_path", "trainer.max_steps=3",
                         "eval.num_samples=0", "trainer.save_every_n_steps=null")
    summary = train(cfg, tmp_path / "run")
    assert summary["steps"] == 3
    base = HiggsAudioV2ForConditionalGeneration.from_pretrained(tiny_checkpoint).state_dict()
    tuned = load_file(tmp_path / "run" / "model" / "model.safetensors")
    changed = {name for name, weight in tuned.items() if not weight.equal(base[name])}
    assert changed and all(any(part in name for part in AUDIO_PATH) for name in changed), sorted(changed)
    assert any("audio_mlp" in name for name in changed) and "audio_lm_head.weight" in changed
    assert not any("self_attn" in name or ".mlp." in name or name == "model.embed_tokens.weight" for name in changed)


def test_a_freeze_entry_that_names_nothing_is_refused(tiny_checkpoint):
    model = HiggsAudioV2ForConditionalGeneration.from_pretrained(tiny_checkpoint)
    with pytest.raises(FreezeConfigError, match=r"\['audio_mpl'\] match no parameter"):
        apply_freeze(model, ["audio_lm_head", "audio_mpl"])


def test_freeze_with_lora_is_one_line_before_loading_anything(tmp_path):
    result = subprocess.run([sys.executable, "-m", "higgs_train.commands.train", "recipe=smoke", "freeze=text_path",
                             f"hydra.run.dir={tmp_path}"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(
        "higgs-train: error: freeze.trainable=['audio_mlp', 'audio_input_layernorm'"), result.stderr[-1000:]
