"""A newcomer's usual mistakes each get one line saying what to fix, never a traceback."""

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # end-to-end runs in subprocesses


@pytest.mark.parametrize("overrides, says", [
    (["data.path=/no/such/train.jsonl"], "data.path=/no/such/train.jsonl does not exist"),
    (["resume=/no/such/checkpoint"], "resume=/no/such/checkpoint does not exist"),
    (["model.name_or_path=nobody/no-such-model"], "download it elsewhere and point at the folder"),
    (["peft.target_modules=[no_such_proj]"], "no_such_proj"),
    (["task=voice_clone", "data.max_examples=1"], "no usable conversation for task=voice_clone"),
    (["data.max_positions=40", "trainer.max_tokens_per_batch=null", "data.on_bad_row=skip"],
     "raise data.max_positions to at least"),
])
def test_each_mistake_is_one_clear_line(overrides, says, tmp_path, tiny_checkpoint, demo_dir):
    result = subprocess.run([sys.executable, "-m", "higgs_train.commands.train", "recipe=smoke",
                             f"hydra.run.dir={tmp_path}",
                             *overrides], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert "Traceback" not in result.stderr and last.startswith("higgs-train: error: ") and says in last, last


@pytest.mark.parametrize("clip, reason", [("clips/nope.wav", "missing audio file"),
                                          ("notes.wav", "undecodable audio")])
def test_a_training_row_whose_audio_cannot_be_read_is_one_line_or_a_counted_skip(clip, reason, tmp_path, demo_dir,
                                                                                tiny_checkpoint):
    (tmp_path / "notes.wav").write_text("not audio\n")
    (tmp_path / "clips").symlink_to(demo_dir / "clips")
    rows = (demo_dir / "train.jsonl").read_text().splitlines()
    bad = rows[2].replace(json.loads(rows[2])["messages"][-1]["content"][0]["path"], clip)
    (tmp_path / "train.jsonl").write_text("\n".join(rows[:2] + [bad] + rows[3:8]) + "\n")
    command = [sys.executable, "-m", "higgs_train.commands.train", "recipe=smoke",
               f"data.path={tmp_path / 'train.jsonl'}",
               "trainer.max_steps=1", "eval.num_samples=0", "eval.val_size=0"]
    failed = subprocess.run([*command, f"hydra.run.dir={tmp_path / 'fail'}"], capture_output=True, text=True,
                            timeout=300)
    last = failed.stderr.strip().splitlines()[-1]
    assert failed.returncode == 2 and "Traceback" not in failed.stderr, failed.stderr[-2000:]
    assert last.startswith(f"higgs-train: error: row {json.loads(rows[2])['id']}: {reason}: ")
    assert clip.split("/")[-1] in last and "data.on_bad_row=skip" in last, last
    skipped = subprocess.run([*command, "data.on_bad_row=skip", f"hydra.run.dir={tmp_path / 'skip'}"],
                             capture_output=True, text=True, timeout=300)
    assert skipped.returncode == 0, skipped.stderr[-2000:]
    assert "left out 1 rows that fail the data checks" in skipped.stdout
    assert json.loads((tmp_path / "skip" / "run_summary.json").read_text())["skipped_rows"] == {reason: 1}
