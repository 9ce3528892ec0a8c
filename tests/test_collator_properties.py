"""Invariants of the collator on random conversations (hypothesis)."""

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from higgs_train.data.collator import ConversationCollator
from higgs_train.data.delay_pattern import revert_delay
from higgs_train.model.loss import IGNORE_INDEX

K = 8


@st.composite
def conversations(draw):
    def clip():
        frames = draw(st.integers(1, 6))
        return torch.tensor(draw(st.lists(st.integers(0, 1023), min_size=K * frames, max_size=K * frames))).view(K, -1)

    text = st.text(alphabet="abc XYZ.,!?é\n", min_size=1, max_size=12).filter(str.strip)
    messages = [{"role": "system", "content": [{"type": "text", "text": draw(text)}]}]
    scene_clips = draw(st.integers(0, 2))
    if draw(st.booleans()) or scene_clips:
        items = [{"type": "text", "text": draw(text)}]
        items += [{"type": "audio", "codes": clip()} for _ in range(scene_clips)]
        messages.append({"role": "scene", "content": items})
    for _ in range(draw(st.integers(1, 3))):
        messages.append({"role": "user", "content": [{"type": "text", "text": draw(text)}]})
        messages.append({"role": "assistant", "content": [{"type": "audio", "codes": clip()}]})
    return {"id": "r", "messages": messages}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(conversations(), min_size=1, max_size=3))
def test_collator_invariants(batch, processor, model_config):
    out = ConversationCollator(processor.tokenizer, model_config)(batch)
    audio_token, delay_token = model_config.audio_token_id, model_config.audio_delay_token_id
    for b, conversation in enumerate(batch):
        clips = [i["codes"] for m in conversation["messages"] for i in m["content"] if i["type"] == "audio"]
        target = conversation["messages"][-1]["content"][0]["codes"]
        ids = out["input_ids"][b]
        # One text position per delayed frame, in the same order.
        positions = (ids == audio_token) | (ids == delay_token)
        frames = int(out["audio_input_ids_mask"][b].sum())
        assert int(positions.sum()) == frames == sum(c.shape[1] + K + 1 for c in clips)
        labels = out["audio_labels"][b, :frames]
        # Only the target clip (the last one) is supervised: its codes, plus exactly one stream-EOS per codebook.
        target_span = target.shape[1] + K + 1
        assert (labels[:-target_span] == IGNORE_INDEX).all()
        assert ((labels == 1025).sum(dim=0) == 1).all()
        assert ((labels != IGNORE_INDEX).sum(dim=0) == target.shape[1] + 1).all()
        reverted = revert_delay(labels[-target_span:].T)
        assert torch.equal(reverted[:, 1:-1], target)
        # The input ids of every clip are its delayed codes between stream BOS and EOS.
        assert torch.equal(revert_delay(out["audio_input_ids"][b, frames - target_span:frames].T)[:, 1:-1], target)
        # Text targets: only the target turn's closing tokens.
        text_targets = out["labels"][b][out["labels"][b] != IGNORE_INDEX].tolist()
        assert processor.tokenizer.convert_ids_to_tokens(text_targets) == ["<|audio_eos|>", "<|eot_id|>"]
