"""The test that matters most: trained on 4 short clips, greedy generation from each clip's prompt reproduces the
clip's code frames and emits stream-EOS where the clip ends, for full fine-tuning and for LoRA on an fp32 and a bf16
frozen base, at both learning rates (the QLoRA setups are in `test_learns_to_stop_qlora.py`, so that pytest-xdist
runs the two halves side by side). One seed per setup here; `benchmarks/learns_to_stop.py` runs every setup on
three seeds and records the pass rate (BENCHMARKS.md)."""

import pytest
from learns_to_stop_setups import LEARNING_RATES, check_learns_to_stop

pytestmark = pytest.mark.slow  # hundreds of training steps


@pytest.mark.parametrize("lr", LEARNING_RATES)
@pytest.mark.parametrize("setup", ["full", "lora_audio", "lora_audio_bf16_base"])
def test_greedy_generation_reproduces_the_clips_and_stops_at_their_end(setup, lr, compose_config, tmp_path, demo_dir):
    check_learns_to_stop(compose_config, tmp_path / "run", setup, lr)
