"""A new user's first hour, as the points where one lost time: one spelling for the built-ins in every tool, the
LJSpeech layout's single speaker said out loud, progress with totals, and messages that say what is wrong. The
console, the progress after training and report.html are checked on a real run in test_smoke_run.py."""

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import soundfile as sf

from data_prep.cli import main as prep_main
from data_prep.convert import convert
from higgs_train.commands.export import ExportError, export
from higgs_train.commands.generate import main as generate_main

ROOT = Path(__file__).resolve().parents[1]


def _exit(main, argv, monkeypatch=None):
    if monkeypatch is not None:
        monkeypatch.setattr(sys, "argv", ["tool", *argv])
    with pytest.raises(SystemExit) as exited:
        main() if monkeypatch is not None else main(argv)
    return exited.value.code


def test_builtin_tiny_and_demo_are_one_spelling_in_every_tool(demo_dir, capsys, monkeypatch):
    prep_main(["encode", "--data", "builtin:demo", "--model", "builtin:tiny"])
    said = capsys.readouterr().out.splitlines()
    assert said[0].startswith("higgs-prep: encoded 0 of 28 clips (28 were cached already); codes in "
                              f"{demo_dir}/codes/")  # words, not a JSON dump; the numbers are in a file for scripts
    assert said[1] == "higgs-prep: next: higgs-train recipe=voice_clone_lora data.path=builtin:demo " \
        "model.name_or_path=builtin:tiny"
    report = json.loads(next((demo_dir / "codes").glob("*/encode_report.json")).read_text())
    assert report["clips"] == 28 and report["cache"].startswith(str(demo_dir))
    assert _exit(prep_main, ["encode", "--data", "builtin:demo", "--model", "tiny"]) == 2
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
    convert("ljspeech", source, tmp_path / "out")
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


@pytest.mark.parametrize(("module", "arguments", "says"), [
    ("higgs_train.commands.export", ["run_dir=x", "format=onnx"], "format='onnx' is not known"),
    ("higgs_train.commands.generate", ["model=builtin:tiny", "text=Hi", "speakers=[feminine, calm]"],
     'speakers=[feminine, calm] is ambiguous (one description with a comma, or one per speaker?); write '
     'speakers="feminine, calm" for one speaker, or speakers="feminine|calm" for one description per speaker'),
    ("higgs_train.commands.eval", ["model=builtin:tiny"], "list must be given"),
])
def test_a_bad_argument_is_answered_before_any_heavy_library_loads(module, arguments, says):
    """Each small tool checks its arguments first: torch, Transformers, PEFT and bitsandbytes are not imported."""
    import subprocess

    code = (f"import sys; sys.argv = ['tool', *{arguments!r}]\nfrom {module} import console\ntry:\n    console()\n"
            "except SystemExit as exit:\n    heavy = ('torch', 'transformers', 'peft', 'bitsandbytes')\n"
            "    print(exit.code, sorted(m for m in heavy if sys.modules.get(m) is not None))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "2 []", result.stdout + result.stderr
    assert says in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_a_clip_only_the_second_decoder_opens_passes_the_checks_and_is_encoded(demo_dir, tmp_path, monkeypatch,
                                                                             processor):
    """An MP3 made here; soundfile's header reader made to refuse it, as libsndfile builds without MP3 do (librosa
    then decodes it): the data checks and the encoder read it through the same decoder."""
    from higgs_train.data import audio as audio_module
    from higgs_train.data.audio import load_audio
    from higgs_train.data.audio_codes import encode_files, encode_waveform
    from higgs_train.data.row_checks import check_audio

    waveform = load_audio(demo_dir / "clips" / "alice_00.wav")
    clip = tmp_path / "alice.mp3"
    sf.write(clip, waveform, 24000, format="MP3")
    real_info = sf.info

    def no_mp3_headers(path, *args, **kwargs):
        if str(path).endswith(".mp3"):
            raise RuntimeError("Format not recognised")
        return real_info(path, *args, **kwargs)

    monkeypatch.setattr(audio_module.sf, "info", no_mp3_headers)
    check_audio([{"role": "assistant", "content": [{"type": "audio", "path": str(clip)}]}], 0.3, 30.0)
    [(path, codes)] = list(encode_files(processor.audio_tokenizer, [str(clip)]))
    assert path == str(clip) and codes.shape[0] == 8 and codes.shape[1] > 30
    assert (codes == encode_waveform(processor.audio_tokenizer, load_audio(clip))).all()


@pytest.mark.slow  # an end-to-end training run
def test_the_python_api_trains_and_speaks_with_the_clis_config(tmp_path, demo_dir, tiny_checkpoint, capsys):
    import higgs_train

    summary = higgs_train.finetune("smoke", {"trainer.max_steps": 2, "eval.num_samples": 0,
                                             "eval.every_n_steps": None}, run_dir=tmp_path / "run")
    assert summary["steps"] == 2 and (tmp_path / "run" / "adapter" / "adapter_config.json").is_file()
    logged = (tmp_path / "run" / "train.log").read_text()  # as higgs-train writes it
    assert "][INFO] done in " in logged and "conversations, " in logged
    import logging

    logging.getLogger("bitsandbytes.backends.cpu.ops").warning("Failed to load CPU gemm_4bit_forward")
    assert "gemm_4bit" not in capsys.readouterr().err  # hidden as the command line hides it
    with pytest.raises(Exception, match="trainer.precision='f16' is not allowed"):
        higgs_train.finetune("smoke", ["trainer.precision=f16"], run_dir=tmp_path / "bad")
    clips = higgs_train.speak(str(tiny_checkpoint), "Hello there.", adapter=str(tmp_path / "run" / "adapter"),
                              max_new_tokens=30, out_dir=tmp_path / "wavs")
    assert clips[0]["sampling_rate"] == 24000 and clips[0]["audio"].dtype.name == "float32"
    assert len(clips[0]["audio"]) == clips[0]["frames"] * 960 and sf.info(clips[0]["path"]).samplerate == 24000


@pytest.mark.parametrize(("overrides", "says"), [
    (["recipe=voice_clone_lora", "data.path=/no/such/data.jsonl"], "data.path=/no/such/data.jsonl does not exist"),
    (["recipe=smoke", "model.name_or_path=/no/such/model"], "cannot load '/no/such/model'"),
])
def test_a_failed_start_leaves_no_empty_dated_run_folder(tmp_path, overrides, says):
    """The first mistake fails early (data.path) or after the run folder is made (the model): either way no empty
    outputs/DATE/TIME is left for the user to wonder about."""
    import subprocess

    result = subprocess.run([sys.executable, "-m", "higgs_train.commands.train", *overrides], cwd=tmp_path,
                            capture_output=True,
                            text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 2 and says in result.stderr, result.stderr[-2000:]
    assert not (tmp_path / "outputs").exists()


def test_a_hub_id_out_of_reach_is_answered_at_once_in_one_line(monkeypatch, caplog):
    """Offline, a hub id printed ten "Retrying in 8s" lines over 34 s before the one good line."""
    import time

    import huggingface_hub
    from huggingface_hub import constants

    from higgs_train.model.hub import HubOutOfReach
    from higgs_train.model.loading import load_processor

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # the tests' own offline switch, off as a user has it
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    started = time.monotonic()
    with pytest.raises(HubOutOfReach, match=r"cannot load 'org/voice': the Hugging Face Hub is out of reach \(.*\) "
                                            r"and it is not in the local cache; download it elsewhere"):
        load_processor("org/voice")
    assert time.monotonic() - started < 3 and "Retrying" not in caplog.text
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda repo, name: "/cache/config.json")
    from higgs_train.model.hub import go_offline_unless_reachable

    go_offline_unless_reachable("org/voice")  # in the cache: it loads from there, asking the Hub nothing more
    assert constants.HF_HUB_OFFLINE is True


def test_warmup_longer_than_the_run_is_said(compose_config, caplog):
    from higgs_train.config import run_config

    caplog.set_level("INFO", logger="higgs_train")
    run_config(compose_config("recipe=smoke", "optim.warmup_steps=20"))  # the smoke run is 20 steps
    assert "optim.warmup_steps=20 is not shorter than the run (trainer.max_steps=20): the lr climbs all run long" \
        in caplog.text
    caplog.clear()
    run_config(compose_config("recipe=smoke", "optim.warmup_steps=5"))
    assert "warmup" not in caplog.text


@pytest.mark.slow  # a 2-step training run
def test_ctrl_c_during_the_final_evaluation_stops_it_with_a_message(tmp_path, demo_dir, compose_config, monkeypatch):
    """It was ignored without a word: the final evaluation ran on to its end."""
    import signal
    import time

    from higgs_train.train import recipe as recipe_module

    def evaluate_until_interrupted(self):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(30)  # an evaluation that would go on; Ctrl-C ends it at once
        raise AssertionError("Ctrl-C was ignored")

    monkeypatch.setattr(recipe_module.FineTuneRecipe, "_evaluate", evaluate_until_interrupted)
    cfg = compose_config("recipe=smoke", "trainer.max_steps=2", "eval.every_n_steps=null")
    started = time.monotonic()
    with pytest.raises(recipe_module.StoppedInFinalEvaluation, match=r"stopped during the final evaluation; the "
                       r"trained weights are saved in .*/run/adapter \(no run_summary.json\); evaluate them with: "
                       r"higgs-eval model=builtin:tiny adapter="):
        recipe_module.train(cfg, tmp_path / "run")
    assert time.monotonic() - started < 25
    assert (tmp_path / "run" / "adapter" / "adapter_config.json").is_file()
    assert not (tmp_path / "run" / "run_summary.json").exists()


def test_a_folder_of_clips_with_text_files_beside_them_converts(tmp_path, demo_dir):
    """LibriTTS's layout (SPEAKER/CHAPTER/ID.wav + ID.normalized.txt) and an aligner corpus's (SPEAKER/ID.wav +
    ID.txt or ID.lab); a clip without its text file is a bad row that says which file to add."""
    source = tmp_path / "LibriTTS" / "train-clean-100"
    clips = sorted((demo_dir / "clips").glob("*.wav"))
    layout = {"19/198/19_198_000001.wav": ("19_198_000001.normalized.txt", "The sun rises in the east."),
              "19/198/19_198_000002.wav": ("19_198_000002.txt", "Please close the door behind you."),
              "84/121/84_121_000001.wav": ("84_121_000001.lab", "We walked along the quiet river."),
              "84/121/84_121_000002.wav": (None, None)}
    for (relative, (text_name, text)), clip in zip(layout.items(), clips):
        target = source / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(clip, target)
        if text_name:
            (target.parent / text_name).write_text(text + "\n")
    (source / "19" / "198" / "19_198_000001.original.txt").write_text("The Sun rises in the East.")
    report = convert("libritts", source, tmp_path / "out")
    rows = [json.loads(line) for line in (tmp_path / "out" / "rejected.jsonl").read_text().splitlines()]
    assert [r["reason"] for r in rows] == ["no transcript file"] and "84_121_000002.txt" in rows[0]["detail"]
    assert report["kept"] == 3
    from datasets import load_from_disk

    kept = {r["id"]: (r["speaker"], r["text"]) for r in load_from_disk(str(tmp_path / "out"))}
    assert kept == {"19_198_19_198_000001": ("19", "The sun rises in the east."),  # normalized, not the original
                    "19_198_19_198_000002": ("19", "Please close the door behind you."),
                    "84_121_84_121_000001": ("84", "We walked along the quiet river.")}
