"""The learns-to-stop test (`test_learns_to_stop.py`) on a 4-bit (QLoRA) frozen base, computed in fp32 and in bf16,
at both learning rates."""

import pytest
from learns_to_stop_setups import LEARNING_RATES, check_learns_to_stop

pytestmark = pytest.mark.slow  # hundreds of training steps


@pytest.mark.parametrize("lr", LEARNING_RATES)
@pytest.mark.parametrize("setup", ["qlora_nf4", "qlora_nf4_bf16_compute"])
def test_greedy_generation_reproduces_the_clips_and_stops_at_their_end(setup, lr, compose_config, tmp_path, demo_dir):
    check_learns_to_stop(compose_config, tmp_path / "run", setup, lr)
