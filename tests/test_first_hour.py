"""A new user's first hour, as the points where one lost time: one spelling for the built-ins in every tool, the
LJSpeech layout's single speaker said out loud, progress with totals, and messages that say what is wrong. The
console, the progress after training and report.html are checked on a real run in test_smoke_run.py."""

import json
import shutil
import sys

import pytest
import soundfile as sf

from data_prep.cli import main as prep_main
from data_prep.convert import convert
from higgs_train.export import ExportError, export
from higgs_train.generate import main as generate_main


def _exit(main, argv, monkeypatch=None):
    if monkeypatch is not None:
        monkeypatch.setattr(sys, "argv", ["tool", *argv])
    with pytest.raises(SystemExit) as exited:
        main() if monkeypatch is not None else main(argv)
    return exited.value.code


def test_builtin_tiny_and_demo_are_one_spelling_in_every_tool(demo_dir, capsys, monkeypatch):
    prep_main(["encode", "--input", "builtin:demo", "--model", "builtin:tiny"])
    report = json.loads(capsys.readouterr().out)
    assert report["clips"] == 28 and report["cache"].startswith(str(demo_dir))
    assert _exit(prep_main, ["encode", "--input", "builtin:demo", "--model", "tiny"]) == 2
    assert "the built-in test checkpoint is spelled builtin:tiny in every tool" in capsys.readouterr().err
    assert _exit(generate_main, ["model=tiny", "text=Hi"], monkeypatch) == 2
    assert "spelled builtin:tiny" in capsys.readouterr().err


def test_the_ljspeech_layout_says_it_is_one_speaker(tmp_path, demo_dir, capsys, caplog):
    with pytest.raises(SystemExit):
        prep_main(["convert", "--help"])
    assert "ONE speaker, named after the folder" in " ".join(capsys.readouterr().out.split())
    source = tmp_path / "anna_and_bo"
    (source / "wavs").mkdir(parents=True)
    shutil.copy(demo_dir / "clips" / "alice_00.wav", source / "wavs" / "a.wav")
    (source / "metadata.csv").write_text("a|Good morning.|\n")
    caplog.set_level("INFO", logger="higgs_train")
    convert("ljspeech", source, tmp_path / "out", show_progress=False)
    assert "every row is one speaker, named after the folder ('anna_and_bo')" in caplog.text


def test_the_convert_bar_knows_its_total(tmp_path, demo_dir, capsys):
    source = tmp_path / "src"
    (source / "clips").mkdir(parents=True)
    lines = (demo_dir / "train.jsonl").read_text().splitlines()[:3]
    for line in lines:
        path = json.loads(line)["messages"][-1]["content"][0]["path"]
        shutil.copy(demo_dir / path, source / path)
    (source / "train.jsonl").write_text("\n".join(lines) + "\n")
    convert("jsonl", source / "train.jsonl", tmp_path / "out")
    assert "3/3" in capsys.readouterr().err
    assert sf.info(next((tmp_path / "out" / "clips").iterdir())).samplerate == 24000


def test_export_of_a_missing_checkpoint_folder_says_it_does_not_exist(tmp_path):
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "config.yaml").write_text("peft: {type: lora}\nmodel: {name_or_path: builtin:tiny}\n")
    with pytest.raises(ExportError, match=r"checkpoint=/no/such/step does not exist; use checkpoint=latest"):
        export(tmp_path, checkpoint="/no/such/step")


def test_the_run_a_dry_run_checked_starts_in_the_same_directory(tmp_path):
    from higgs_train.train.run_dir import claim_run_dir

    (tmp_path / "dry_run").mkdir()
    (tmp_path / "dry_run" / "batch_0.safetensors").write_bytes(b"batch")
    assert claim_run_dir(tmp_path, None, False, 10, is_main=True) is None
