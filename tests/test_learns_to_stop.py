"""The test that matters most: trained on 4 short clips, greedy generation from each clip's prompt reproduces the
clip's code frames and emits stream-EOS where the clip ends, for full fine-tuning and for LoRA on an fp32, a bf16 and
a 4-bit (QLoRA) frozen base."""

import pytest

from higgs_train.train.recipe import train

pytestmark = pytest.mark.slow  # hundreds of training steps

COMMON = ["recipe=smoke", "data.max_examples=4", "trainer.batch_size=4", "trainer.max_steps=400",
          "trainer.log_every_n_steps=50", "trainer.save_every_n_steps=null", "optim.scheduler=constant",
          "eval.num_samples=4", "eval.max_new_tokens=120", "eval.do_sample=false",
          "eval.val_size=0"]  # the samples are the training clips themselves
# The tiny kit's audio head is random and frozen under LoRA; 64 hidden dims cannot steer 8 random 1026-way heads
# with low-rank updates alone, so the head trains too (the real checkpoint's head is already trained).
LORA = ["peft=lora_audio", "peft.r=16", "peft.alpha=32", "peft.modules_to_save=[audio_lm_head]", "optim.lr=5e-3"]


@pytest.mark.parametrize("adapter", [
    ["peft=none", "optim.lr=2e-3"],
    LORA,
    [*LORA, "model.weights_dtype=bf16", "trainer.precision=bf16"],
    [*LORA, "model.quantization=nf4"],  # 4-bit weights, computed in fp32 (bf16 on CPU is 5x slower)
], ids=["full", "lora_audio", "lora_audio_bf16_base", "qlora_nf4"])
def test_greedy_generation_reproduces_the_clips_and_stops_at_their_end(adapter, compose_config, tmp_path, demo_dir):
    summary = train(compose_config(*COMMON, *adapter), tmp_path / "run")
    assert summary["final_loss"] < 0.1
    for sample in summary["samples"]:
        assert sample["stopped"], sample
        assert abs(sample["frames"] - sample["target_frames"]) <= 1, sample
        assert sample["frame_match"] >= 0.99, sample
