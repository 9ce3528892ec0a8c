"""Serve what you trained: Boson's layout mapped back by Transformers' own documented rules gives the logits of the
merged Transformers export, every tensor accounted for; its config holds every key Boson's loader reads; the
generation settings, voice presets and the trim / duration cap of generation; bad export requests as one line."""

import json
import re
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file
from transformers import (
    AutoConfig,
    AutoTokenizer,
    GenerationConfig,
    HiggsAudioV2ForConditionalGeneration,
    PreTrainedTokenizerFast,
)

from higgs_train.commands.export import ExportError, export
from higgs_train.commands.generate import _defaults, generate
from higgs_train.evaluate.samples import _trimmed
from higgs_train.model.boson_layout import DROPPED_BY_THE_CONVERSION, boson_config
from higgs_train.model.loading import load_processor
from higgs_train.train.recipe import train

# Transformers' convert_higgs_audio_v2_to_hf.py, ORIGINAL_TO_CONVERTED_KEY_MAPPING, applied in its order: the
# documented rules, written here independently of the code that wrote the Boson layout.
CONVERSION = {r"^audio_codebook_embeddings\.": "model.embed_audio_tokens.embed_audio_tokens.",
              r"^(embed_tokens|layers|norm)": r"model.\1", r"^audio_decoder_proj\.": ""}
RUN = ["recipe=smoke", "trainer.max_steps=4", "trainer.save_every_n_steps=4", "eval.num_samples=0", "optim.lr=1e-2",
       "eval.every_n_steps=null"]
# Every key Boson's HiggsAudioConfig / HiggsAudioModel / HiggsAudioServeEngine reads, and where its value comes
# from in the Transformers config (boson_multimodal/model/higgs_audio/modeling_higgs_audio.py, serve_engine.py).
BOSON_KEYS = {
    "model_type": lambda c, t: "higgs_audio",
    "audio_adapter_type": lambda c, t: "dual_ffn",  # every decoder layer has the audio DualFFN
    "audio_dual_ffn_layers": lambda c, t: list(range(c.num_hidden_layers)),
    "audio_num_codebooks": lambda c, t: c.num_codebooks,
    "audio_codebook_size": lambda c, t: c.codebook_size - 2,  # Boson adds stream BOS and EOS itself
    "audio_stream_bos_id": lambda c, t: c.audio_stream_bos_id,
    "audio_stream_eos_id": lambda c, t: c.audio_stream_eos_id,
    "audio_out_token_idx": lambda c, t: c.audio_token_id,  # <|AUDIO_OUT|>
    "audio_out_bos_token_id": lambda c, t: c.audio_bos_token_id,  # <|audio_out_bos|>
    "audio_eos_token_id": lambda c, t: t.convert_tokens_to_ids("<|audio_eos|>"),
    "pad_token_id": lambda c, t: c.pad_token_id,
    "use_delay_pattern": lambda c, t: True,
    "skip_audio_tower": lambda c, t: True,  # the Transformers model has no Whisper tower
    "use_audio_out_embed_projector": lambda c, t: False,
    "use_audio_out_self_attention": lambda c, t: False,
    # HiggsAudioModel.capture_model (the CUDA-graph warm-up of HiggsAudioServeEngine on a GPU) reads these two from
    # the top level: zeros of (1, 1, config.hidden_size) in config.torch_dtype (checked below against the tensors).
    "hidden_size": lambda c, t: c.hidden_size,
}
# transformers 4.46 (Boson's requirements.txt: transformers>=4.45.1,<4.47.0) loads a text tokenizer through
# AutoTokenizer: tokenizer_config.json's tokenizer_class must be a class 4.x has (Boson's released tokenizer, Llama
# 3's, is a PreTrainedTokenizerFast; transformers 5's TokenizersBackend is not one), and PreTrainedTokenizerFast reads
# tokenizer.json (tokenization_utils_fast.py, TOKENIZER_FILE). Keys 4.x does not know are left out.
TRANSFORMERS4_TOKENIZER = {"class": "PreTrainedTokenizerFast", "files": {"tokenizer.json", "tokenizer_config.json"},
                           "transformers5_only_keys": {"backend", "extra_special_tokens", "is_local",
                                                       "local_files_only"}}
TEXT_KEYS = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
             "num_key_value_heads", "head_dim", "rms_norm_eps", "max_position_embeddings")


def _to_transformers(state: dict) -> dict:
    converted = {}
    for key, tensor in state.items():
        for pattern, replacement in CONVERSION.items():
            key = re.sub(pattern, replacement, key)
        assert key not in converted, f"{key} twice"
        converted[key] = tensor
    return converted


def _logits(model, inputs):
    with torch.no_grad():
        return model.eval()(**inputs).logits


@pytest.mark.slow
@pytest.mark.parametrize("adapter", [["peft=lora_audio"], ["peft=dora_audio"], ["peft=none", "freeze=text_path"]],
                         ids=["lora", "dora", "full"])
def test_the_boson_layout_maps_back_to_the_merged_transformers_logits(adapter, compose_config, tmp_path, inputs,
                                                                      tiny_checkpoint):
    run_dir = tmp_path / "run"
    train(compose_config(*RUN, *adapter), run_dir)
    merged = export(run_dir, merge=True)
    boson = export(run_dir, format="boson")
    assert boson == run_dir / "export" / "boson"
    hf_state = load_file(merged / "model.safetensors")
    boson_state = load_file(boson / "model.safetensors")
    back = _to_transformers(boson_state)
    assert set(back) == set(hf_state) | {"text_lm_head.weight"}  # none dropped, none added but the text head
    assert len(boson_state) == len(back)  # none duplicated
    for key, tensor in hf_state.items():
        assert torch.equal(back[key], tensor), key
    layout = json.loads((boson / "boson_layout.json").read_text())
    assert layout["dropped_by_transformers_conversion"] == list(DROPPED_BY_THE_CONVERSION)
    model = HiggsAudioV2ForConditionalGeneration(AutoConfig.from_pretrained(merged), use_text_head=True)
    missing = model.load_state_dict(back, strict=True)
    assert not missing.missing_keys and not missing.unexpected_keys
    plain = HiggsAudioV2ForConditionalGeneration.from_pretrained(merged)
    torch.testing.assert_close(_logits(model, inputs), _logits(plain, inputs), atol=1e-5, rtol=0)
    assert (boson / "audio_tokenizer" / "config.json").is_file() and (boson / "tokenizer_config.json").is_file()


def test_the_boson_config_holds_every_key_bosons_loader_reads(tiny_checkpoint):
    config, tokenizer = AutoConfig.from_pretrained(tiny_checkpoint), AutoTokenizer.from_pretrained(tiny_checkpoint)
    written = boson_config(config, tokenizer, torch.bfloat16)
    for key, source in BOSON_KEYS.items():
        assert written[key] == source(config, tokenizer), key
    assert written["torch_dtype"] == "bfloat16"
    for key in TEXT_KEYS:
        assert written["text_config"][key] == getattr(config, key), key
    assert written["text_config"]["model_type"] == "llama" and written["audio_encoder_config"]["model_type"] == \
        "higgs_audio_encoder"
    assert written["text_config"]["rope_scaling"]["rope_type"] == "llama3"
    json.dumps(written)  # a config.json


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, demo_dir):
    from accelerate.state import AcceleratorState

    from higgs_train.config.files import compose_config

    run_dir = tmp_path_factory.mktemp("serving") / "run"
    train(compose_config([*RUN, "task=voice_clone"]), run_dir)
    AcceleratorState._reset_state(reset_partial_state=True)
    return run_dir


def test_every_export_carries_the_generation_settings_and_a_clone_run_its_voice_presets(lora_run):
    adapter = export(lora_run, voice_presets=True, out=lora_run / "export" / "with_presets")
    settings = GenerationConfig.from_pretrained(adapter)
    assert (settings.ras_win_len, settings.ras_win_max_num_repeat) == (7, 2)
    model_config = AutoConfig.from_pretrained(json.loads((adapter / "adapter_config.json").read_text())[
        "base_model_name_or_path"])
    assert settings.eos_token_id == model_config.eos_token_id and settings.pad_token_id == model_config.pad_token_id
    longest = json.loads((lora_run / "run_summary.json").read_text())["longest_clip_frames"]
    assert longest > 0 and settings.max_new_tokens == int(np.ceil(1.5 * longest)) + 9
    presets = json.loads((adapter / "voice_presets" / "config.json").read_text())
    assert sorted(presets) == ["alice", "bruno"]
    for preset in presets.values():
        assert preset["transcript"] and sf.info(adapter / "voice_presets" / preset["audio_file"]).samplerate == 24000


@pytest.mark.parametrize(("arguments", "says"), [
    ({"format": "onnx"}, "format='onnx' is not known; use one of ['transformers', 'boson']"),
    ({"checkpoint": "/no/such/step"}, "checkpoint=/no/such/step does not exist; use checkpoint=latest"),
])
def test_bad_export_requests_are_one_line_and_write_nothing(arguments, says, lora_run):
    before = sorted(p.name for p in (lora_run / "export").iterdir()) if (lora_run / "export").is_dir() else []
    with pytest.raises(ExportError, match=re.escape(says)):
        export(lora_run, **arguments)
    after = sorted(p.name for p in (lora_run / "export").iterdir()) if (lora_run / "export").is_dir() else []
    assert before == after


def test_an_export_over_someone_elses_folder_or_from_a_damaged_checkpoint_is_refused(lora_run, tmp_path):
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("mine")
    with pytest.raises(Exception, match="holds files that higgs-train did not write"):
        export(lora_run, format="boson", out=theirs)
    assert sorted(p.name for p in theirs.iterdir()) == ["notes.txt"]
    damaged = tmp_path / "run"
    shutil.copytree(lora_run, damaged)
    step = next((damaged / "checkpoints").iterdir())
    (step / "trainable.safetensors").write_bytes(b"cut short")
    with pytest.raises(ExportError, match=r"is damaged \(trainable.safetensors has 9 bytes"):
        export(damaged, checkpoint="latest", out=tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_qlora_run_exports_merged_16bit_weights_in_either_layout(compose_config, tmp_path):
    run_dir = tmp_path / "run"
    train(compose_config(*RUN, "model.quantization=nf4", "trainer.precision=bf16"), run_dir)
    for layout in ("transformers", "boson"):
        folder = export(run_dir, merge=True, format=layout, out=tmp_path / layout)
        tensors = load_file(folder / "model.safetensors")
        assert {t.dtype for t in tensors.values()} == {torch.bfloat16}
        assert not any("quant" in key or "absmax" in key for key in tensors)


def test_trimming_cuts_trailing_silence_and_keeps_one_frame_of_it():
    codes = torch.arange(8 * 10).reshape(8, 10)
    tone = (0.3 * np.sin(np.arange(6 * 960) / 24000 * 2 * np.pi * 220)).astype(np.float32)
    waveform = np.concatenate([tone, np.zeros(4 * 960, np.float32)])
    kept_codes, kept, cut = _trimmed(codes, waveform, 960, -40)
    assert cut == 3 and kept_codes.shape == (8, 7) and len(kept) == 7 * 960
    assert _trimmed(codes[:, :6], tone, 960, -40)[2] == 0


def test_generate_caps_a_runaway_at_the_texts_length_and_says_so(tiny_checkpoint, tmp_path, caplog, monkeypatch):
    from higgs_train.evaluate import samples as samples_module

    limits = []

    def runs_on(model, collator, conversations, settings):  # a model that never stops
        limits.append(settings.max_new_tokens)
        return [(torch.randint(0, 1024, (8, settings.max_new_tokens - 9)), False) for _ in conversations]

    monkeypatch.setattr(samples_module, "generate_codes", runs_on)
    caplog.set_level("INFO", logger="higgs_train")
    records = generate({**_defaults(), "model": str(tiny_checkpoint), "text": "Hello there.", "max_new_tokens": 500,
                        "out": str(tmp_path), "duration_cap": 1.0})
    cap = int(np.ceil(len("Hello there.") / 15 * 25))  # the text's expected frames at 15 characters a second
    assert limits == [cap + 9]  # generation itself stops at the cap, not at max_new_tokens
    assert records[0]["frames"] == cap and records[0]["capped_s"] == pytest.approx(cap / 25)
    assert not records[0]["stopped"] and "capped at 0.80 s (duration_cap=1.0 x the text's length)" in caplog.text


def _boson_tokenizer_is_transformers4s(folder, source_tokenizer):
    assert TRANSFORMERS4_TOKENIZER["files"] <= {p.name for p in folder.iterdir()}
    saved = json.loads((folder / "tokenizer_config.json").read_text())
    assert saved["tokenizer_class"] == TRANSFORMERS4_TOKENIZER["class"]
    assert not set(saved) & TRANSFORMERS4_TOKENIZER["transformers5_only_keys"]
    loaded = PreTrainedTokenizerFast.from_pretrained(folder)
    text = "<|begin_of_text|>Hello there, World!<|eot_id|><|audio_out_bos|><|AUDIO_OUT|><|audio_eos|>"
    assert loaded.encode(text, add_special_tokens=False) == source_tokenizer.encode(text, add_special_tokens=False)
    assert (loaded.pad_token, loaded.eos_token) == (source_tokenizer.pad_token, source_tokenizer.eos_token)
    assert set(saved["additional_special_tokens"]) >= {"<|AUDIO_OUT|>", "<|audio_out_bos|>", "<|audio_eos|>"}


@pytest.mark.slow
def test_exports_load_on_another_machine_with_their_sources_gone(tiny_checkpoint, compose_config, tmp_path,
                                                                   inputs):
    """A base in a local folder (its processor names its audio tokenizer by absolute path), trained with bf16
    weights, exported merged and in Boson's layout; the exports are moved, the base and the run deleted."""
    base = shutil.copytree(tiny_checkpoint, tmp_path / "base")
    config = json.loads((base / "processor_config.json").read_text())
    config["audio_tokenizer"]["audio_tokenizer_name_or_path"] = str(base / "audio_tokenizer")
    (base / "processor_config.json").write_text(json.dumps(config))
    source_tokenizer = AutoTokenizer.from_pretrained(base)
    run_dir = tmp_path / "run"
    train(compose_config(*RUN, f"model.name_or_path={base}", "model.weights_dtype=bf16",
                         "trainer.precision=bf16"), run_dir)
    exports = {layout: export(run_dir, merge=True, format=layout, out=tmp_path / "made" / layout)
               for layout in ("transformers", "boson")}
    before = _logits(HiggsAudioV2ForConditionalGeneration.from_pretrained(exports["transformers"]), inputs)
    moved = shutil.move(tmp_path / "made", tmp_path / "elsewhere")
    shutil.rmtree(base)
    shutil.rmtree(run_dir)
    for folder in moved.iterdir():
        for file in folder.rglob("*.json"):
            assert str(base) not in file.read_text(), file  # nothing points back at the base
    merged = moved / "transformers"
    processor = load_processor(str(merged))
    assert processor.audio_tokenizer.name_or_path == str(merged / "audio_tokenizer")
    torch.testing.assert_close(_logits(HiggsAudioV2ForConditionalGeneration.from_pretrained(merged), inputs), before)
    boson = moved / "boson"
    written = json.loads((boson / "config.json").read_text())
    tensors = load_file(boson / "model.safetensors")
    assert {t.dtype for t in tensors.values()} == {torch.bfloat16} and written["torch_dtype"] == "bfloat16"
    assert written["hidden_size"] == tensors["embed_tokens.weight"].shape[1]
    _boson_tokenizer_is_transformers4s(boson, source_tokenizer)
    assert (boson / "audio_tokenizer" / "model.safetensors").is_file()
