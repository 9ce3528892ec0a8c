"""The tiny kit is a real checkpoint: plain `from_pretrained` round trip, training step, generation to a wav."""

import filecmp

import soundfile as sf
import torch
from transformers import AutoProcessor, HiggsAudioV2ForConditionalGeneration, HiggsAudioV2TokenizerModel

from higgs_train.builtins.random_checkpoint import write_random_checkpoint
from higgs_train.data.audio_codes import attach_codes
from higgs_train.data.collator import ConversationCollator
from higgs_train.evaluate.samples import write_samples
from higgs_train.model.loss import audio_loss_terms


def test_same_seed_writes_identical_weights(tmp_path):
    a, b = write_random_checkpoint(tmp_path / "a", seed=3), write_random_checkpoint(tmp_path / "b", seed=3)
    assert filecmp.cmp(a / "model.safetensors", b / "model.safetensors", shallow=False)
    assert filecmp.cmp(a / "audio_tokenizer" / "model.safetensors", b / "audio_tokenizer" / "model.safetensors",
                       shallow=False)


def test_round_trip_with_plain_transformers_loaders(tiny_checkpoint, demo_rows, eval_cfg_factory, tmp_path):
    processor = AutoProcessor.from_pretrained(tiny_checkpoint)  # exactly what a hub id goes through
    model = HiggsAudioV2ForConditionalGeneration.from_pretrained(tiny_checkpoint, use_text_head=True)
    assert model.text_lm_head is not None
    config = model.config
    assert config.codebook_size == processor.audio_tokenizer.config.codebook_size + 2
    assert config.num_codebooks == processor.audio_tokenizer.config.num_quantizers == 8
    assert processor.audio_tokenizer.config.frame_rate == 25

    rows = [dict(r) for r in demo_rows[:2]]
    attach_codes(rows, processor.audio_tokenizer)
    codes = rows[0]["messages"][-1]["content"][0]["codes"]
    assert len(codes.unique()) > 10, "random codebooks make codes depend on the audio"

    collator = ConversationCollator(processor.tokenizer, config)
    terms = audio_loss_terms(model, collator(rows), config)
    loss = (terms.sums / terms.counts).sum()
    loss.backward()
    assert torch.isfinite(loss) and model.audio_lm_head.weight.grad.abs().sum() > 0

    records, _ = write_samples(model, processor.audio_tokenizer, collator, rows[:1],
                               eval_cfg_factory(max_new_tokens=30), tmp_path / "samples")
    waveform, rate = sf.read(records[0]["path"])
    assert rate == 24000 and len(waveform) == records[0]["frames"] * 960 > 0


def test_audio_tokenizer_codebooks_survive_reload(tiny_checkpoint):
    tokenizer = HiggsAudioV2TokenizerModel.from_pretrained(tiny_checkpoint / "audio_tokenizer")
    embed = tokenizer.quantizer.quantizers[0].codebook.embed
    assert embed.abs().sum() > 0
