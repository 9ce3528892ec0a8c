"""Demo speech data and the task builders that turn its rows into each workflow's conversations."""

import copy
import json
import shutil

import pytest
import soundfile as sf
import torch

from higgs_train.builtins import demo_data as demo
from higgs_train.data.conversations import load_rows
from higgs_train.data.tasks import choose_references, task_conversation


def test_demo_is_real_short_speech_in_two_voices(demo_rows):
    assert len(demo_rows) >= 24 and len({r["speaker"] for r in demo_rows}) >= 2
    for row in demo_rows:
        info = sf.info(row["messages"][-1]["content"][0]["path"])
        assert info.samplerate == 24000 and info.channels == 1 and 1.0 <= info.duration <= 4.0
        assert row["messages"][2]["content"][0]["text"]


def test_missing_espeak_is_one_actionable_line(monkeypatch, tmp_path):
    monkeypatch.setattr(shutil, "which", lambda _: None)
    with pytest.raises(SystemExit, match="apt-get install espeak-ng"):
        demo.write_demo_dataset(tmp_path)


def test_voice_clone_reference_is_another_clip_of_the_same_speaker_chosen_reproducibly(demo_rows, demo_task):
    conversations = demo_task("voice_clone", seed=0)
    assert len(conversations) == len(demo_rows)
    for row, conversation in zip(demo_rows, conversations):
        roles = [m["role"] for m in conversation["messages"]]
        assert roles == ["system", "scene", "user", "assistant", "user", "assistant"]
        reference, target = conversation["messages"][3], conversation["messages"][5]
        assert reference["supervised"] is False and target["supervised"] is True
        assert target["content"][0]["path"] == row["messages"][-1]["content"][0]["path"]
        assert reference["content"][0]["path"] != target["content"][0]["path"]
        assert f"/{row['speaker']}_" in reference["content"][0]["path"]
    paths = lambda cs: [c["messages"][3]["content"][0]["path"] for c in cs]  # noqa: E731
    assert paths(demo_task("voice_clone", seed=0)) == paths(conversations) != paths(demo_task("voice_clone", seed=1))


def test_references_are_other_rows_of_the_speaker_and_a_lonely_row_has_none():
    speakers = ["nobody_else", "ann", "bo", "ann", None, "bo", "ann", None]
    chosen = choose_references(speakers, seed=0)
    assert chosen[0] == chosen[4] == chosen[7] == -1
    for index in (1, 2, 3, 5, 6):
        assert chosen[index] != index and speakers[chosen[index]] == speakers[index]
    assert chosen.tolist() == choose_references(speakers, seed=0).tolist()


def test_a_speaker_with_one_clip_is_counted_not_silently_dropped(demo_dir, tmp_path, data_cfg_factory, processor,
                                                                 model_config):
    from higgs_train.data.collator import ConversationCollator
    from higgs_train.data.loader import task_conversations

    rows = load_rows(demo_dir / "train.jsonl")[:3]  # without the codes other tests may have put in demo_rows
    lonely = dict(rows[0], id="lonely", speaker="nobody_else")
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [lonely] + rows))
    data = tmp_path / "train.jsonl"
    conversations, skipped = task_conversations(data, data_cfg_factory(data), "voice_clone", 0,
                                                ConversationCollator(processor.tokenizer, model_config),
                                                processor.audio_tokenizer)
    assert len(conversations) == 3 and skipped == {"no other clip of the same speaker to use as reference": 1}


def test_multi_speaker_layouts(demo_rows):
    row, other = copy.deepcopy(demo_rows[:2])
    smart = task_conversation("multi_speaker", copy.deepcopy(row), description="feminine, calm")
    assert smart["messages"][1]["content"][-1] == {"type": "text", "text": "SPEAKER0: feminine, calm"}
    assert smart["messages"][2]["content"][0]["text"].startswith("[SPEAKER0] ")
    clone = task_conversation("multi_speaker_clone", row, other)
    scene = clone["messages"][1]["content"]
    assert scene[-2] == {"type": "text", "text": "SPEAKER0:"} and scene[-1]["type"] == "audio"
    assert scene[-1]["path"] != clone["messages"][-1]["content"][0]["path"]


def test_smart_voice_scenes_carry_each_speakers_description(processor, model_config):
    from higgs_train.data.collator import ConversationCollator

    rows = [_basic_row("a", "Hello there.", "a.wav"), {**_basic_row("b", "Good day.", "b.wav"), "speaker": "bo"}]
    described = [task_conversation("smart_voice", copy.deepcopy(r), description=d)
                 for r, d in zip(rows, ["feminine, calm", "masculine, deep"])]
    assert [c["messages"][1]["content"] for c in described] == [
        [{"type": "text", "text": "Quiet room."}, {"type": "text", "text": "SPEAKER0: feminine, calm"}],
        [{"type": "text", "text": "Quiet room."}, {"type": "text", "text": "SPEAKER0: masculine, deep"}]]
    assert [c["messages"][2:] for c in described] == [r["messages"][2:] for r in rows]  # text and target unchanged
    collator = ConversationCollator(processor.tokenizer, model_config)
    described[0]["messages"][-1]["content"][0]["codes"] = torch.zeros(model_config.num_codebooks, 3, dtype=torch.long)
    prompt = processor.tokenizer.decode(collator.encode(described[0]["messages"]).input_ids)
    assert "Quiet room.\n\nSPEAKER0: feminine, calm\n<|scene_desc_end|>" in prompt
    assert task_conversation("smart_voice", rows[0]) == rows[0]  # no speakers.json: the row as it is


def _basic_row(row_id: str, text: str, path: str) -> dict:
    return {"id": row_id, "speaker": "ann", "messages": [
        {"role": "system", "content": [{"type": "text", "text": "Generate audio following instruction."}]},
        {"role": "scene", "content": [{"type": "text", "text": "Quiet room."}]},
        {"role": "user", "content": [{"type": "text", "text": text}]},
        {"role": "assistant", "content": [{"type": "audio", "path": path}]}]}


SYSTEM = {"role": "system", "content": [{"type": "text", "text": "Generate audio following instruction."}]}


def test_exact_voice_clone_and_multi_speaker_clone_layouts():
    rows = [_basic_row("r1", "Target words.", "/a/1.wav"), _basic_row("r2", "Reference words.", "/a/2.wav")]
    clone = task_conversation("voice_clone", *copy.deepcopy(rows))
    assert clone == {"id": "r1", "speaker": "ann", "messages": [
        SYSTEM,
        {"role": "scene", "content": [{"type": "text", "text": "Quiet room."}]},
        {"role": "user", "content": [{"type": "text", "text": "Reference words."}]},
        {"role": "assistant", "content": [{"type": "audio", "path": "/a/2.wav"}], "supervised": False},
        {"role": "user", "content": [{"type": "text", "text": "Target words."}]},
        {"role": "assistant", "content": [{"type": "audio", "path": "/a/1.wav"}], "supervised": True}]}
    multi = task_conversation("multi_speaker_clone", *copy.deepcopy(rows))
    assert multi == {"id": "r1", "speaker": "ann", "messages": [
        SYSTEM,
        {"role": "scene", "content": [{"type": "text", "text": "Quiet room."}, {"type": "text", "text": "SPEAKER0:"},
                                      {"type": "audio", "path": "/a/2.wav"}]},
        {"role": "user", "content": [{"type": "text", "text": "[SPEAKER0] Target words."}]},
        {"role": "assistant", "content": [{"type": "audio", "path": "/a/1.wav"}], "supervised": True}]}
