"""What makes the 5.8B model fit: frozen weights in 16 bits or 4 bits, trainable ones in fp32, 8-bit optimizer
states that a checkpoint restores exactly, bad combinations refused before any weight loads, and a memory plan."""

from __future__ import annotations

import pytest
import torch
from transformers import HiggsAudioV2Config, HiggsAudioV2ForConditionalGeneration

from higgs_train.config import ConfigError, run_config
from higgs_train.model.memory import estimate_training_memory
from higgs_train.model.peft_setup import apply_peft
from higgs_train.model.trainable import build_trainable_model
from higgs_train.train import checkpoint as checkpoint_module
from higgs_train.train.optimizer import build_optimizer

LORA_HEAD = ("recipe=smoke", "peft.modules_to_save=[audio_lm_head]")


@pytest.mark.parametrize(("overrides", "says"), [
    (("model.weights_dtype=fp16", "trainer.precision=bf16"), "model.weights_dtype=fp16 needs trainer.precision=fp16"),
    (("model.weights_dtype=bf16",), "model.weights_dtype=bf16 needs trainer.precision=bf16"),  # smoke is fp32
    (("model.quantization=nf4", "peft=none"), "a quantized model cannot be fully fine-tuned"),
    (("peft=none", "freeze=text_path", "model.weights_dtype=bf16", "trainer.precision=bf16"),
     "model.weights_dtype=bf16 is for adapters"),
    (("model.quantization=int8", "trainer.device=cuda"), "no CUDA device is visible"),
    (("model.weights_dtype=half",), "model.weights_dtype='half' is not allowed"),
    (("optim.name=lion",), "optim.name='lion' is not allowed; use one of ['adamw', 'adamw8bit', 'paged_adamw8bit']"),
])
def test_a_bad_combination_is_one_line_before_any_weight_loads(overrides, says, compose_config):
    with pytest.raises(ConfigError, match=says.replace("[", r"\[").replace("]", r"\]")) as raised:
        run_config(compose_config("recipe=smoke", *overrides))
    assert "\n" not in str(raised.value)


def test_quantization_under_deepspeed_is_refused(compose_config, monkeypatch):
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    with pytest.raises(ConfigError, match="does not run under DeepSpeed"):
        run_config(compose_config("recipe=smoke", "model.quantization=nf4"))


def _dtypes(model, trainable: bool) -> set[torch.dtype]:
    return {p.dtype for p in model.parameters() if p.requires_grad == trainable}


def test_a_bf16_base_keeps_frozen_weights_in_bf16_and_what_trains_in_fp32(compose_config, tiny_checkpoint):
    cfg = compose_config(*LORA_HEAD, "model.weights_dtype=bf16", "trainer.precision=bf16")
    model = build_trainable_model(cfg, str(tiny_checkpoint), "sdpa")
    assert _dtypes(model, trainable=False) == {torch.bfloat16}
    assert _dtypes(model, trainable=True) == {torch.float32}  # LoRA A/B and the trained copy of the audio head
    auto = build_trainable_model(compose_config(*LORA_HEAD, "trainer.precision=bf16"), str(tiny_checkpoint), "sdpa")
    assert _dtypes(auto, trainable=False) == {torch.bfloat16}  # auto follows trainer.precision
    fp32 = build_trainable_model(compose_config(*LORA_HEAD), str(tiny_checkpoint), "sdpa")
    assert _dtypes(fp32, trainable=False) == {torch.float32}  # precision fp32: today's behaviour


def _one_step(model, tiny_checkpoint, demo_rows) -> None:
    from transformers import AutoProcessor

    from higgs_train.data.audio_codes import attach_codes
    from higgs_train.data.collator import ConversationCollator
    from higgs_train.model.loss import audio_loss_terms

    rows = [dict(r) for r in demo_rows[:2]]
    processor = AutoProcessor.from_pretrained(tiny_checkpoint)
    attach_codes(rows, processor.audio_tokenizer)
    batch = ConversationCollator(processor.tokenizer, model.config)(rows)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        terms = audio_loss_terms(model, batch, model.config)
    (terms.sums / terms.counts.clamp(min=1)).sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_full_fine_tuning_keeps_fp32_weights_under_a_freeze_preset_and_trains(compose_config, tiny_checkpoint,
                                                                              demo_rows):
    full = build_trainable_model(compose_config("recipe=smoke", "peft=none", "trainer.precision=bf16"),
                                 str(tiny_checkpoint), "sdpa")
    assert _dtypes(full, trainable=True) == {torch.float32} and not _dtypes(full, trainable=False)
    audio_path = build_trainable_model(compose_config("recipe=smoke", "peft=none", "freeze=text_path",
                                                      "trainer.precision=bf16"), str(tiny_checkpoint), "sdpa")
    assert _dtypes(audio_path, trainable=True) == _dtypes(audio_path, trainable=False) == {torch.float32}
    _one_step(audio_path, tiny_checkpoint, demo_rows)  # under bf16 autocast, both halves of each DualFFN layer


def test_qlora_quantizes_the_decoder_and_nothing_the_codes_depend_on(compose_config, tiny_checkpoint):
    import bitsandbytes as bnb

    model = build_trainable_model(compose_config(*LORA_HEAD, "model.quantization=nf4"), str(tiny_checkpoint), "sdpa")
    layers = dict(model.named_modules())
    quantized = [name for name, module in layers.items() if isinstance(module, bnb.nn.Linear4bit)]
    assert quantized and all(".layers." in name for name in quantized)
    assert any(name.endswith("audio_mlp.up_proj.base_layer") for name in quantized)
    for name, module in layers.items():
        if name.endswith(("audio_lm_head", "embed_tokens", "embed_audio_tokens.embed_audio_tokens")):
            assert not isinstance(module, bnb.nn.Linear4bit) and module.weight.dtype == torch.float32, name
    assert _dtypes(model, trainable=True) == {torch.float32}


def test_a_quantized_layer_takes_the_empty_input_of_a_step_without_audio(compose_config, tiny_checkpoint):
    """On CPUs with AVX512-BF16, bitsandbytes' fused kernel dies with SIGFPE on 0 rows (this test then crashes)."""
    model = build_trainable_model(compose_config(*LORA_HEAD, "model.quantization=nf4"), str(tiny_checkpoint), "sdpa")
    up = dict(model.named_modules())["base_model.model.model.layers.0.audio_mlp.up_proj"]
    with torch.inference_mode():
        assert up(torch.empty(0, up.in_features)).shape == (0, up.out_features)
        assert up(torch.ones(3, up.in_features)).shape == (3, up.out_features)


@pytest.mark.parametrize("name", ["adamw8bit", "paged_adamw8bit"])
def test_an_8bit_optimizer_state_survives_a_checkpoint_exactly(name, compose_config, tmp_path):
    torch.manual_seed(0)
    big, small = torch.nn.Parameter(torch.randn(5000)), torch.nn.Parameter(torch.randn(10))  # 8-bit and fp32 states
    optim_cfg = compose_config("recipe=smoke", f"optim.name={name}").optim
    optimizer = build_optimizer([big, small], optim_cfg, torch.device("cpu"))
    for _ in range(3):
        big.grad, small.grad = torch.randn(5000), torch.randn(10)
        optimizer.step()
    checkpoint_module._save_optimizer(optimizer, tmp_path)
    restored = build_optimizer([big, small], optim_cfg, torch.device("cpu"))
    checkpoint_module._load_optimizer(restored, tmp_path)
    for index in (0, 1):
        saved, loaded = optimizer.state_dict()["state"][index], restored.state_dict()["state"][index]
        assert saved["step"] == loaded["step"] == 3
        inner, restored_inner = saved["__bnb_optimizer_quant_state__"], loaded["__bnb_optimizer_quant_state__"]
        assert inner.keys() == restored_inner.keys()
        assert all(torch.equal(inner[k], restored_inner[k]) for k in inner)
    assert optimizer.state_dict()["state"][0]["__bnb_optimizer_quant_state__"]["state1"].dtype == torch.uint8


def _real_on_meta(cfg):
    with torch.device("meta"):
        model = HiggsAudioV2ForConditionalGeneration(HiggsAudioV2Config(codebook_size=1026))
    from higgs_train.model.freezing import apply_freeze

    return apply_freeze(apply_peft(model, cfg.peft), cfg.freeze.trainable)


@pytest.mark.parametrize(("overrides", "weights", "total"), [
    # LoRA r16 on the audio path, bf16 frozen base: 5.38B x 2 bytes of weights, small adapters.
    (("peft=lora_audio", "peft.r=16", "model.weights_dtype=bf16"), (9.8, 10.3), (11, 18)),
    # QLoRA: the decoder in 4 bits, the embeddings and heads in fp32.
    (("peft=lora_audio", "peft.r=16", "model.quantization=nf4"), (3.8, 4.6), (5, 10)),
    # The audio path (~2.1B) trained with 8-bit AdamW, the frozen text path in fp32 too.
    (("peft=none", "freeze=text_path", "optim.name=adamw8bit"), (19.5, 20.5), (30, 42)),
    # Everything in fp32 with AdamW: 16 bytes a parameter before activations.
    (("peft=none", "optim.name=adamw"), (19.5, 20.5), (80, 95)),
])
def test_the_memory_plan_of_the_real_architecture(overrides, weights, total, compose_config):
    cfg = compose_config("recipe=voice_clone_lora", "data.path=x.jsonl", "trainer.precision=bf16",
                         "model.gradient_checkpointing=true", *overrides)
    plan = estimate_training_memory(_real_on_meta(cfg), cfg, tokens=2048, audio_tokenizer_params=200_000_000)
    assert weights[0] < plan["weights"] < weights[1], plan
    assert total[0] < plan["total"] < total[1], plan


def test_the_real_preset_has_the_hub_checkpoints_widths():
    from higgs_train.builtins.random_checkpoint import build_model_config, build_text_tokenizer

    config = build_model_config(build_text_tokenizer(), 8, "real")
    with torch.device("meta"):
        model = HiggsAudioV2ForConditionalGeneration(config)
        with_text_head = HiggsAudioV2ForConditionalGeneration(config, use_text_head=True)
    assert sum(p.numel() for p in model.parameters()) == 5_377_281_024  # the 5.8B checkpoint without its text head
    assert round(sum(p.numel() for p in with_text_head.parameters()) / 1e9, 2) == 5.77
    two_layers = build_model_config(build_text_tokenizer(), 8, "real", num_layers=2)
    assert two_layers.num_hidden_layers == 2 and two_layers.hidden_size == 3072
