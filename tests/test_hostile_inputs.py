"""A newcomer's usual mistakes each get one line saying what to fix, never a traceback."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize("overrides, says", [
    (["data.path=/no/such/train.jsonl"], "data.path=/no/such/train.jsonl does not exist"),
    (["resume=/no/such/checkpoint"], "resume=/no/such/checkpoint does not exist"),
    (["model.name_or_path=nobody/no-such-model"], "set model.name_or_path=/local/dir"),
    (["peft.target_modules=[no_such_proj]"], "no_such_proj"),
    (["task=voice_clone", "data.max_examples=1"], "no usable conversation for task=voice_clone"),
    (["data.max_positions=40", "trainer.max_tokens_per_batch=null", "data.on_bad_row=skip"],
     "raise data.max_positions to at least"),
])
def test_each_mistake_is_one_clear_line(overrides, says, tmp_path, tiny_checkpoint, demo_dir):
    result = subprocess.run([sys.executable, "-m", "higgs_train.cli", "recipe=smoke", f"hydra.run.dir={tmp_path}",
                             *overrides], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert "Traceback" not in result.stderr and last.startswith("higgs-train: error: ") and says in last, last
