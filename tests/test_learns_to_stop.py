"""The test that matters most: trained on 4 short clips, greedy generation from each clip's prompt reproduces the
clip's code frames and emits stream-EOS where the clip ends, for full fine-tuning and for LoRA on an fp32, a bf16 and
a 4-bit (QLoRA) frozen base, the last with fp32 and with bf16 compute. One seed per setup here;
`benchmarks/learns_to_stop.py` runs every setup on three seeds and records the pass rate (BENCHMARKS.md)."""

import pytest

from higgs_train.train.recipe import train

pytestmark = pytest.mark.slow  # hundreds of training steps

# The smoke recipe's optimizer settings (lr 2e-3 after the default warmup), 400 steps on 4 clips.
COMMON = ["recipe=smoke", "data.max_examples=4", "trainer.batch_size=4", "trainer.max_steps=400",
          "trainer.log_every_n_steps=1", "trainer.save_every_n_steps=null", "eval.num_samples=4",
          "eval.max_new_tokens=120", "eval.do_sample=false", "eval.every_n_steps=null",  # one evaluation, at the end
          "eval.val_size=0"]  # the samples are the training clips themselves
# The tiny kit's audio head is random and frozen under LoRA; 64 hidden dims cannot steer 8 random 1026-way heads
# with low-rank updates alone, so the head trains too (the real checkpoint's head is already trained).
LORA = ["peft=lora_audio", "peft.r=16", "peft.alpha=32", "peft.modules_to_save=[audio_lm_head]"]
SETUPS = {
    "full": ["peft=none", "optim.lr=2e-3"],
    "lora_audio": LORA,
    "lora_audio_bf16_base": [*LORA, "model.weights_dtype=bf16", "trainer.precision=bf16"],
    "qlora_nf4": [*LORA, "model.quantization=nf4"],  # 4-bit weights, computed in fp32
    "qlora_nf4_bf16_compute": [*LORA, "model.quantization=nf4", "model.weights_dtype=bf16", "trainer.precision=bf16"],
}
SEEDS = {"full": 1, "lora_audio": 7, "lora_audio_bf16_base": 0, "qlora_nf4": 1, "qlora_nf4_bf16_compute": 7}


def passes(summary: dict) -> bool:
    """Every sample stopped within one frame of its clip's end and reproduced >= 99% of its code frames."""
    return all(s["stopped"] and abs(s["frames"] - s["target_frames"]) <= 1 and s["frame_match"] >= 0.99
               for s in summary["samples"])


@pytest.mark.parametrize("setup", SETUPS)
def test_greedy_generation_reproduces_the_clips_and_stops_at_their_end(setup, compose_config, tmp_path, demo_dir):
    summary = train(compose_config(*COMMON, *SETUPS[setup], f"seed={SEEDS[setup]}"), tmp_path / "run")
    assert summary["final_loss"] < 0.05  # nats per target (the mean over the 8 codebooks)
    assert len(summary["samples"]) == 4 and passes(summary), summary["samples"]
