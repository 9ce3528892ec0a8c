"""A run's result usable anywhere Transformers runs: the exported adapter and the merged checkpoint give the logits the
trained model gave, and `higgs-generate` speaks for each of the four workflows."""

import subprocess
import sys

import pytest
import soundfile as sf
import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoProcessor, HiggsAudioV2ForConditionalGeneration

from higgs_train.commands.export import ExportError, export
from higgs_train.commands.export import main as export_main
from higgs_train.commands.generate import _defaults, generate
from higgs_train.commands.generate import main as generate_main
from higgs_train.data.audio_codes import attach_codes
from higgs_train.data.collator import ConversationCollator
from higgs_train.model.loading import load_model, load_processor
from higgs_train.model.peft_setup import apply_peft
from higgs_train.model.trainable import build_trainable_model
from higgs_train.train.checkpoint import complete_checkpoints
from higgs_train.train.recipe import train

RUN = ["recipe=smoke", "trainer.max_steps=6", "trainer.save_every_n_steps=6", "eval.num_samples=0",
       "optim.lr=1e-2"]


def _logits(model, inputs):
    with torch.no_grad():
        return model.eval()(**inputs).logits


@pytest.mark.slow  # an end-to-end training run
@pytest.mark.parametrize("modules_to_save", [[], ["audio_lm_head"]], ids=["lora", "lora+audio_lm_head"])
def test_exported_adapter_and_merged_checkpoint_give_the_trained_logits(modules_to_save, compose_config, tmp_path,
                                                                        tiny_checkpoint, inputs, monkeypatch):
    cfg = compose_config(*RUN, f"peft.modules_to_save=[{','.join(modules_to_save)}]")
    run_dir = tmp_path / "run"
    train(cfg, run_dir)
    # The model as training held it at its last step: the base + adapters + the trained weights of that step.
    in_memory = apply_peft(load_model(str(tiny_checkpoint), "sdpa", torch.float32, False), cfg.peft)
    in_memory.load_state_dict(load_file(complete_checkpoints(run_dir)[-1] / "trainable.safetensors"), strict=False)
    expected = _logits(in_memory, inputs)
    base_logits = _logits(HiggsAudioV2ForConditionalGeneration.from_pretrained(tiny_checkpoint), inputs)
    assert not torch.allclose(expected, base_logits, atol=1e-3), "training changed nothing: the test would be void"

    adapter = export(run_dir)
    reloaded = PeftModel.from_pretrained(HiggsAudioV2ForConditionalGeneration.from_pretrained(tiny_checkpoint), adapter)
    torch.testing.assert_close(_logits(reloaded, inputs), expected, atol=1e-5, rtol=0)

    merged = export(run_dir, checkpoint="latest", merge=True)
    plain = HiggsAudioV2ForConditionalGeneration.from_pretrained(merged)
    torch.testing.assert_close(_logits(plain, inputs), expected, atol=1e-5, rtol=0)
    # The kit's base names its audio tokenizer by a local path: the export bundles it and names it relatively, which
    # higgs-train's loader reads from anywhere and plain Transformers from inside the folder.
    assert load_processor(str(merged)).audio_tokenizer.name_or_path == str(merged / "audio_tokenizer")
    monkeypatch.chdir(merged)
    assert AutoProcessor.from_pretrained(merged).tokenizer is not None
    assert not list(merged.parent.glob(".*.partial"))


@pytest.mark.slow  # three training runs
@pytest.mark.parametrize(("base", "atol"), [
    (("model.weights_dtype=bf16", "trainer.precision=bf16"), 1e-2),  # measured 0.0039: one bf16 step at |logit| 0.7
    # 4-bit base, fp32 compute: measured 2.7e-7; 3.6e-4 on CPUs with AVX512-BF16, where bitsandbytes' fused CPU
    # kernel computes the quantized layers of the reference in bf16 whatever the compute dtype
    (("model.quantization=nf4",), 1e-3),
    (("model.quantization=nf4", "trainer.precision=bf16"), 1e-2),  # measured 0.0039
], ids=["bf16_base", "qlora_fp32_compute", "qlora_bf16_compute"])
def test_a_16bit_or_4bit_base_merges_into_a_plain_checkpoint_with_the_adapters_logits(base, atol, compose_config,
                                                                                     tmp_path, tiny_checkpoint,
                                                                                     inputs):
    cfg = compose_config(*RUN, *base)
    run_dir = tmp_path / "run"
    train(cfg, run_dir)
    as_trained = build_trainable_model(cfg, str(tiny_checkpoint), "sdpa")  # the 16-bit or 4-bit base + adapters
    as_trained.load_state_dict(load_file(complete_checkpoints(run_dir)[-1] / "trainable.safetensors"), strict=False)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.trainer.precision == "bf16"):
        expected = _logits(as_trained, inputs).float()
    base_logits = _logits(HiggsAudioV2ForConditionalGeneration.from_pretrained(tiny_checkpoint), inputs)
    assert not torch.allclose(expected, base_logits, atol=0.1), "training changed nothing: the test would be void"

    merged = export(run_dir, checkpoint="latest", merge=True)
    plain = HiggsAudioV2ForConditionalGeneration.from_pretrained(merged)  # no quantization config, no PEFT
    assert plain.dtype == (torch.bfloat16 if cfg.trainer.precision == "bf16" else torch.float32)
    torch.testing.assert_close(_logits(plain, inputs).float(), expected, atol=atol, rtol=0)
    assert (export(run_dir) / "adapter_model.safetensors").is_file()  # the adapter alone exports as before


def _run_main(main, arguments, monkeypatch, capsys) -> str:
    """The tool's `main` as its console script runs it; returns stderr after it exits with status 2."""
    monkeypatch.setattr(sys, "argv", ["tool", *arguments])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_export_of_an_unfinished_run_says_what_to_export_instead(tmp_path, monkeypatch, capsys):
    with pytest.raises(ExportError, match="not a higgs-train run directory"):
        export(tmp_path)
    assert _run_main(export_main, [f"run_dir={tmp_path}", "merge=maybe"], monkeypatch, capsys).strip() == \
        "higgs-export: error: merge='maybe' must be true or false"


@pytest.mark.parametrize("workflow", [
    {"text": "The sun rises.", "scene": "A quiet room."},
    {"text": "[SPEAKER0] Hello. [SPEAKER1] Hi there.", "speakers": ["feminine", "masculine"]},
    {"text": "The sun rises.", "reference_audio": "clips/alice_00.wav", "reference_text": "Good morning."},
    {"text": "[SPEAKER0] Hello. [SPEAKER1] Hi there.", "reference_audio": ["clips/alice_00.wav", "clips/bruno_00.wav"]},
], ids=["smart_voice", "multi_speaker", "voice_clone", "multi_speaker_clone"])
def test_generate_writes_a_wav_for_each_workflow(workflow, tmp_path, demo_dir, tiny_checkpoint, monkeypatch):
    monkeypatch.chdir(demo_dir)  # reference paths relative to the working directory, as a user types them
    records = generate({**_defaults(), **workflow, "model": str(tiny_checkpoint), "out": str(tmp_path),
                        "max_new_tokens": 20})
    waveform, rate = sf.read(tmp_path / "speech.wav")  # one text: <out>/<id>.wav, id=speech
    assert rate == 24000 and len(records) == 1 and len(waveform) == records[0]["frames"] * 960 > 0


@pytest.mark.slow
def test_generate_cli_takes_a_prompts_file_and_an_adapter(tmp_path, demo_dir, tiny_checkpoint, compose_config):
    run_dir = tmp_path / "run"
    train(compose_config(*RUN), run_dir)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"id": "one", "text": "One."}\n'
                       f'{{"id": "two", "text": "Two.", "reference_audio": "{demo_dir}/clips/alice_01.wav", '
                       '"reference_text": "Hello."}\n{"text": "Three."}\n')
    result = subprocess.run([sys.executable, "-m", "higgs_train.commands.generate", f"model={tiny_checkpoint}",
                             f"adapter={run_dir / 'adapter'}", f"list={prompts}", f"out={tmp_path / 'wavs'}",
                             "max_new_tokens=20", "batch_size=2"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "wavs").glob("*.wav")) == ["one.wav", "prompt_3.wav", "two.wav"]
    assert result.stdout.count("higgs-generate: ") == 3
    assert "generating samples:   0%|          | 0/3" in result.stderr  # a bar with its total while it works


@pytest.mark.parametrize("arguments, says", [
    ([], "model must be given"),
    (["model=builtin:tiny", "text=Hi", "reference_audio=nowhere.wav", "reference_text=x"],
     "command line: reference_audio nowhere.wav does not exist"),
    (["model=builtin:tiny", "text=Hi", "voice=anna"], "'voice=anna' is not KEY=VALUE with a known KEY"),
])
def test_generate_mistakes_are_one_line(arguments, says, monkeypatch, capsys):
    said = _run_main(generate_main, arguments, monkeypatch, capsys)
    assert said.startswith("higgs-generate: error: ") and says in said and len(said.strip().splitlines()) == 1, said


@pytest.mark.slow  # an end-to-end training run
def test_full_fine_tuning_exports_a_checkpoint_that_loads_plainly(compose_config, tmp_path, tiny_checkpoint, inputs):
    cfg = compose_config(*RUN, "peft=none", "freeze=text_path")
    run_dir = tmp_path / "run"
    train(cfg, run_dir)
    expected = _logits(HiggsAudioV2ForConditionalGeneration.from_pretrained(run_dir / "model"), inputs)
    exported = export(run_dir, checkpoint="latest")
    assert exported == run_dir / "export" / "merged"
    torch.testing.assert_close(_logits(HiggsAudioV2ForConditionalGeneration.from_pretrained(exported), inputs),
                               expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("task", ["smart_voice", "voice_clone", "multi_speaker", "multi_speaker_clone"])
def test_generate_prompts_are_laid_out_as_the_training_conversations(task, demo_dir, demo_task, processor,
                                                                     model_config):
    """What higgs-generate asks is token for token what training taught: the task's training conversation without
    its target turn, from the plain fields a user gives (the transcript as the data has it, untagged)."""
    import json

    from higgs_train.evaluate.prompts import prompt_conversation, prompt_task

    descriptions = json.loads((demo_dir / "speakers.json").read_text())
    built = demo_task(task)[0]
    text = built["messages"][-2]["content"][0]["text"].replace("[SPEAKER0] ", "")
    audio = [i["path"] for m in built["messages"][:-1] for i in m["content"] if i["type"] == "audio"]
    fields = {"text": text, "scene": built["messages"][1]["content"][0]["text"]}
    if task == "voice_clone":
        fields.update(reference_audio=audio[0], reference_text=built["messages"][-4]["content"][0]["text"])
    elif task in ("multi_speaker", "smart_voice"):
        fields["speakers"] = [descriptions[built["speaker"]]]
        fields["text"] = f"[SPEAKER0] {text}" if task == "multi_speaker" else text
    else:
        fields["reference_audio"] = audio
    assert prompt_task(fields) == task
    prompt = prompt_conversation(fields, "test")
    assert prompt["messages"][0] == built["messages"][0]
    conversations = [built, prompt]
    attach_codes(conversations, processor.audio_tokenizer)
    collator = ConversationCollator(processor.tokenizer, model_config)
    ours, theirs = (collator.prompts([c]) for c in conversations)
    assert torch.equal(ours["input_ids"], theirs["input_ids"])
    if audio:
        assert torch.equal(ours["audio_input_ids"], theirs["audio_input_ids"])
