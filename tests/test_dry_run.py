"""`dry_run=true` shows what training would see and stops before the first step."""

import os
import re
import subprocess
import sys

import pytest

from higgs_train.commands.dry_run import dry_run
from higgs_train.model.trainable import build_trainable_model


@pytest.mark.slow
def test_dry_run_shows_the_first_batch_and_writes_nothing(tmp_path, tiny_checkpoint, demo_dir):
    run_dir, scratch = tmp_path / "run", tmp_path / "tmp"
    scratch.mkdir()
    result = subprocess.run([sys.executable, "-m", "higgs_train.commands.train", "recipe=voice_clone_lora",
                             "model=tiny",
                             "data=demo", "dry_run=true", f"hydra.run.dir={run_dir}"],
                            capture_output=True, text=True, timeout=300, env={**os.environ, "TMPDIR": str(scratch)})
    assert result.returncode == 0, result.stderr[-2000:]
    assert not run_dir.exists()  # nothing written where the real run will start
    assert not list(scratch.iterdir())  # nor left in the system's temporary folder
    [line] = [line for line in result.stdout.splitlines() if "first batch:" in line]
    shapes = {name: (shape, dtype) for name, shape, dtype in re.findall(r"(\w+) \(([\d, ]+)\) (\w+)", line)}
    assert set(shapes) == {"input_ids", "attention_mask", "labels", "audio_input_ids", "audio_input_ids_mask",
                           "audio_labels"}
    assert shapes["audio_input_ids"][0].endswith(", 8") and shapes["audio_input_ids_mask"][1] == "bool"
    out = result.stdout
    assert "context, no targets" in out and "codes + 1 stream-EOS per codebook" in out  # reference vs target clip
    assert "«<|audio_eos|>»«<|eot_id|>»" in out
    assert "trainable" in out and "estimated training memory" in out


@pytest.mark.parametrize("overrides", [("model.use_text_head=true",), ("peft=none", "freeze=text_path")])
def test_dry_run_counts_the_parameters_training_builds(overrides, compose_config, tmp_path, tiny_checkpoint, caplog):
    cfg = compose_config("recipe=smoke", *overrides)
    caplog.set_level("INFO", logger="higgs_train")
    dry_run(cfg, tmp_path)
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("parameters:")]
    trained = build_trainable_model(cfg, str(tiny_checkpoint), "sdpa")
    total = sum(p.numel() for p in trained.parameters())
    trainable = sum(p.numel() for p in trained.parameters() if p.requires_grad)
    assert line.startswith(f"parameters: {total:,} total, {trainable:,} trainable")
