"""higgs-studio's command lines: argv lists built from typed values (never a shell string), shown as a user types
them, and read back by each tool as the values they were built from."""

from __future__ import annotations

import shlex
import sys

from higgs_train.config.files import compose_config
from higgs_train.studio import commands


def test_a_train_command_is_the_tool_with_its_overrides_and_resumes_by_default():
    command = commands.train("smoke", "runs/a", {"trainer.max_steps": 5, "optim.lr": 0.002, "peft": "lora_all"})
    assert command.argv() == [sys.executable, "-m", "higgs_train.commands.train", "recipe=smoke", "trainer.max_steps=5",
                              "optim.lr=0.002", "peft=lora_all", "out=runs/a", "resume=auto"]
    assert command.shown() == ("higgs-train recipe=smoke trainer.max_steps=5 optim.lr=0.002 peft=lora_all "
                               "out=runs/a resume=auto")
    dry = commands.train("anna", "runs/a", {}, config_dir="my_configs", dry_run=True)
    assert dry.args == ("--config-dir", "my_configs", "recipe=anna", "out=runs/a", "dry_run=true")


def test_text_with_spaces_quotes_and_shell_characters_reaches_hydra_unchanged():
    tricky = "my data/it's, here; $(rm -rf ~) [x]=1"
    command = commands.train("smoke", "runs/a", {"data.path": tricky, "trainer.device": "cpu"})
    override = next(a for a in command.argv() if a.startswith("data.path="))
    assert compose_config(["recipe=smoke", override]).data.path == tricky
    assert shlex.split(command.shown())[2] == override  # the shown line, pasted in a shell, gives the same argv


def test_a_generate_command_keeps_each_value_one_argument():
    command = commands.generate("builtin:tiny", "Hi; echo owned", "speak", "a", reference_audio=["a.wav", "b.wav"],
                                settings={"max_new_tokens": 50, "seed": None})
    assert command.args == ("model=builtin:tiny", "text=Hi; echo owned", "reference_audio=[a.wav,b.wav]",
                            "out=speak", "id=a", "max_new_tokens=50")


def test_eval_export_and_prep_commands():
    assert commands.evaluate(["builtin:tiny"], ["runs/a/adapter", "runs/b/adapter"], "builtin:demo-eval", "evals/x",
                             {"limit": 10}).shown() == ("higgs-eval model=builtin:tiny "
                                                        "'adapter=[runs/a/adapter,runs/b/adapter]' "
                                                        "list=builtin:demo-eval out=evals/x limit=10")
    assert commands.export("runs/a", "merged", "best").args == ("run_dir=runs/a", "merge=true", "checkpoint=best")
    assert commands.export("runs/a", "boson").args == ("run_dir=runs/a", "format=boson")
    assert commands.convert("audiofolder", "raw", "data/ready").argv()[1:] == [
        "-m", "data_prep.cli", "convert", "audiofolder", "--data", "raw", "--out", "data/ready"]
    assert commands.ingest("raw", "data/ready", asr="pocketsphinx").args[-2:] == ("--asr", "pocketsphinx")


def test_a_run_started_elsewhere_resumes_from_its_own_record():
    again = commands.train_again(["recipe=smoke", "trainer.max_steps=9", "dry_run=false", "overwrite=true"], "runs/a")
    assert again.args == ("recipe=smoke", "trainer.max_steps=9", "out=runs/a", "resume=auto")
