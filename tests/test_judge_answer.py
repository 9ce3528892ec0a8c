"""The one judge of a generated answer (evaluation, GRPO's rewards and pairs all use it): the expected-length rule,
decoding only when a metric listens, and GRPO's rewards named and shaped by the metric registry."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch
from omegaconf import OmegaConf

from higgs_train.config import ConfigError, run_config
from higgs_train.evaluate.judge_answer import AnswerJudge, expected_frames
from higgs_train.evaluate.judges import Judges
from higgs_train.evaluate.metrics import METRICS, in_words
from higgs_train.objectives.grpo import rewards_of
from higgs_train.runtime.renamed import RENAMED_REWARDS

SETTINGS = OmegaConf.create({"chars_per_second": 15.0, "silence_db": -40.0, "language": "en"})


def _conversation(target: dict | None, text: str = "Fifteen letters") -> dict:
    messages = [{"role": "user", "content": [{"type": "text", "text": text}]}]
    if target is not None:
        messages.append({"role": "assistant", "content": [{"type": "audio", **target}]})
    return {"id": "a", "messages": messages}


def test_the_expected_length_is_the_target_clips_where_there_is_one_else_the_texts(tmp_path):
    wav = tmp_path / "target.wav"
    sf.write(wav, np.zeros(48000, np.float32), 24000)  # 2 s: 50 frames at 25 frames/s
    assert expected_frames(_conversation({"codes": torch.zeros(8, 37, dtype=torch.long), "path": str(wav)}), 25,
                           15.0) == 37  # the codes the model should reproduce
    assert expected_frames(_conversation({"path": str(wav)}), 25, 15.0) == 50  # a clip with no codes yet: its file
    assert expected_frames(_conversation(None), 25, 15.0) == 25  # no clip: 15 letters at 15 letters per second
    test_list_row = {**_conversation(None), "target_path": str(wav)}  # a test list's ground-truth file
    assert expected_frames(test_list_row, 25, 15.0) == 50


class _Tokenizer:
    """An audio tokenizer that counts its decodes (one 40 ms frame of tone per code frame)."""

    config = SimpleNamespace(frame_rate=25)

    def __init__(self):
        self.decoded = 0

    def parameters(self):
        return iter([torch.zeros(1)])

    def decode(self, codes):
        self.decoded += 1
        tone = 0.3 * torch.sin(torch.arange(codes.shape[-1] * 960) / 24000 * 2 * math.pi * 220)
        return SimpleNamespace(audio_values=tone[None, None])


def test_an_answer_is_decoded_only_when_a_measured_metric_listens():
    tokenizer = _Tokenizer()
    codes = torch.arange(8 * 25).reshape(8, 25)
    conversation = _conversation(None)
    record = AnswerJudge(tokenizer, SETTINGS, Judges(), metrics=("stopped", "duration_error", "loop_share"))(
        conversation, codes, True)
    assert tokenizer.decoded == 0 and set(record) == {"frames", "stopped", "duration_error", "loop_share"}
    assert record["duration_error"] == pytest.approx(0.0)  # 25 frames for 15 letters at 15 per second
    record = AnswerJudge(tokenizer, SETTINGS, Judges())(conversation, codes, True)
    assert tokenizer.decoded == 1 and record["trailing_silence"] == 0.0 and record["silent_share"] == 0.0


def test_rewards_carry_metric_names_and_an_answer_that_never_stopped_earns_none():
    record = {"stopped": True, "duration_error": math.log(2) / 2, "trailing_silence": 0.25, "loop_share": 0.0,
              "wer": 0.1, "speaker_similarity": 0.6}
    assert rewards_of(record) == pytest.approx({"stopped": 1.0, "duration_error": 0.5, "trailing_silence": 0.75,
                                                "loop_share": 1.0, "wer": 0.5, "speaker_similarity": 0.5})
    assert rewards_of({**record, "stopped": False}) == dict.fromkeys(record, 0.0)
    assert set(RENAMED_REWARDS.values()) <= {name for name, metric in METRICS.items() if metric.reward}


@pytest.mark.parametrize("old", sorted(RENAMED_REWARDS))
def test_an_old_reward_name_is_answered_with_its_metric_name(old, compose_config):
    with pytest.raises(ConfigError) as raised:
        run_config(compose_config("recipe=grpo_smoke", f"+objective.rewards.{old}=1"))
    assert str(raised.value) == (f"objective.rewards.{old} is now objective.rewards.{RENAMED_REWARDS[old]} (rewards "
                                 "carry the metric registry's names)")


def test_the_pages_say_each_measured_metric_in_the_registrys_words_and_order():
    record = {"stopped": True, "speaker_similarity": 0.91234, "loop_share": 0.02, "wer": None, "frame_match": 1.0}
    assert in_words(record) == ["loop share 0.02", "frames matching the target 1", "speaker similarity 0.912"]
