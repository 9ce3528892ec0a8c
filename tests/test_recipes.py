"""Every recipe composes and validates; config mistakes fail before any model loads, naming the key."""

import subprocess
import sys

import pytest

from higgs_train.config import ConfigError, run_config
from higgs_train.config.files import RECIPES_DIR, compose_config

RECIPES = sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


def test_the_catalog_is_complete():
    assert set(RECIPES) >= {"smoke", "voice_clone_lora", "smart_voice_lora", "multi_speaker_lora", "tts_full"}


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_composes_and_validates(recipe, tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text("")
    pairs = [f"data.pairs={data}"] if recipe.startswith("dpo") and recipe != "dpo_smoke" else []
    cfg = compose_config([f"recipe={recipe}", f"data.path={data}", *pairs] if "smoke" not in recipe else
                         [f"recipe={recipe}"])
    run_config(cfg)
    header = (RECIPES_DIR / f"{recipe}.yaml").read_text().splitlines()[:6]
    assert any("higgs-train recipe=" in line or "-m higgs_train.commands.train recipe=" in line for line in header), \
        "each recipe states its launch command in its header comment"


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_runs_on_the_tiny_kit_by_override(recipe):
    pairs = ["data.pairs=builtin:demo-pairs"] if recipe.startswith("dpo") else []
    cfg = compose_config([f"recipe={recipe}", "model=tiny", "data=demo", *pairs])
    run_config(cfg)
    assert cfg.model.name_or_path == "builtin:tiny"
    assert (cfg.data.pairs if recipe.startswith("dpo") else cfg.data.path).startswith("builtin:demo")


def test_recipe_choices_reach_the_config():
    cfg = compose_config(["recipe=voice_clone_lora", "data.path=x.jsonl", "peft.r=4"])
    assert cfg.task.name == "voice_clone" and cfg.peft.r == 4 and "audio_mlp.up_proj" in cfg.peft.target_modules
    assert compose_config(["recipe=tts_full", "data.path=x.jsonl"]).peft.type == "none"


def test_bad_value_names_the_key_and_the_choices():
    cfg = compose_config(["recipe=smoke", "trainer.precision=fp8"])
    with pytest.raises(ConfigError, match=r"trainer.precision='fp8' is not allowed; use one of \['bf16'"):
        run_config(cfg)


def _cli(tmp_path, *args):
    return subprocess.run([sys.executable, "-m", "higgs_train.commands.train", *args,
                           f"hydra.run.dir={tmp_path / 'run'}"],
                          capture_output=True, text=True, timeout=120)


def test_cli_rejects_a_mistyped_key_in_one_line_before_loading_anything(tmp_path):
    result = _cli(tmp_path, "recipe=smoke", "trainer.max_step=3")
    assert result.returncode == 2 and "Loading weights" not in result.stderr + result.stdout
    assert result.stderr.strip().splitlines() == [
        "higgs-train: error: Could not override 'trainer.max_step': no such key, did you mean trainer.max_steps?; "
        "`higgs-train --cfg job` prints every key"]  # never "+key", which adds a key that nothing reads


def test_cli_rejects_an_unknown_recipe_in_one_line_listing_the_known_ones(tmp_path):
    result = _cli(tmp_path, "recipe=smoek")
    [line] = result.stderr.strip().splitlines()
    assert result.returncode == 2 and "'recipe/smoek'" in line and "smoke, tts_full, voice_clone_lora" in line


def test_cli_bad_value_is_one_line(tmp_path):
    result = _cli(tmp_path, "recipe=smoke", "model.attn_implementation=flash")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "higgs-train: error: model.attn_implementation='flash' is not allowed; "
        "use one of ['auto', 'flash_attention_2', 'flex_attention', 'sdpa', 'eager']"
    ]
    assert "[ERROR] model.attn_implementation='flash' is not allowed" in (tmp_path / "run" / "train.log").read_text()
