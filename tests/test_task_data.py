"""The training table and the conversations built from it when their index is asked: the same conversations, lengths
and left-out counts as the in-memory task builders made before (recorded in tests/data/task_conversations.json at
07560ca, from `prepare_conversations` on the demo set), read from memory-mapped files."""

import copy
import hashlib
import json
import os
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from higgs_train.data.audio import load_audio
from higgs_train.data.audio_codes import encode_waveform
from higgs_train.data.collator import ConversationCollator
from higgs_train.data.conversations import DataError, load_rows
from higgs_train.data.table_build import open_table
from higgs_train.data.task_data import task_dataset
from higgs_train.data.tasks import TASKS

RECORDED = json.loads((Path(__file__).parent / "data" / "task_conversations.json").read_text())


def _data_cfg(path, **overrides):
    values = {"path": str(path), "max_examples": None, "min_seconds": 0.3, "max_seconds": 30.0, "on_bad_row": "skip",
              "max_positions": 4096, "encode_batch_size": 8}
    return OmegaConf.create({**values, **overrides})


def _recorded_form(conversation, root):
    messages = copy.deepcopy(conversation["messages"])
    for message in messages:
        for item in message["content"]:
            if item["type"] == "audio":
                item.pop("codes")
                item["path"] = os.path.relpath(item["path"], root)
    return {"id": conversation["id"], "speaker": conversation["speaker"], "messages": messages}


@pytest.fixture(scope="module")
def demo_table(demo_dir, processor):
    data = demo_dir / "train.jsonl"
    return open_table(data, _data_cfg(data), processor.audio_tokenizer)


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("seed", [0, 3])
def test_each_task_gives_the_conversations_the_in_memory_builders_gave(task, seed, demo_table, demo_dir, processor,
                                                                       model_config):
    collator = ConversationCollator(processor.tokenizer, model_config)
    dataset, skipped = task_dataset(demo_table, task, seed, collator, _data_cfg(demo_dir / "train.jsonl"))
    recorded = RECORDED[f"{task}/{seed}"]
    conversations = [dataset[i] for i in range(len(dataset))]
    assert [c["id"] for c in conversations] == recorded["ids"] and skipped == recorded["skipped"]
    built = [_recorded_form(c, demo_dir) for c in conversations]
    assert built[1] == recorded["example"]
    assert hashlib.sha256(json.dumps(built, sort_keys=True).encode()).hexdigest() == recorded["sha256"]
    assert dataset.lengths.tolist() == recorded["num_positions"]
    assert [collator.encode(c["messages"]).num_positions for c in conversations] == recorded["num_positions"]


def test_a_second_start_opens_no_audio_and_measures_nothing(demo_dir, processor, model_config, monkeypatch):
    """What makes start-up independent of the dataset's size: the second start reads the table's columns only."""
    import soundfile

    from higgs_train.data import audio, table_build

    collator = ConversationCollator(processor.tokenizer, model_config)
    data_cfg = _data_cfg(demo_dir / "train.jsonl")
    first = open_table(data_cfg.path, data_cfg, processor.audio_tokenizer)
    task_dataset(first, "voice_clone", 0, collator, data_cfg)

    def forbidden(*args, **kwargs):
        raise AssertionError("a second start must not do this")

    for module, name in ((soundfile, "read"), (soundfile, "info"), (audio, "load_audio"),
                         (table_build, "load_rows"), (collator, "count_positions")):
        monkeypatch.setattr(module, name, forbidden)
    again = open_table(data_cfg.path, data_cfg, processor.audio_tokenizer)
    dataset, _ = task_dataset(again, "voice_clone", 0, collator, data_cfg)
    assert not again.built and again.folder == first.folder
    batch = collator.pad([collator.encode(dataset[i]["messages"]) for i in range(4)])
    assert batch["audio_input_ids_mask"].any()


def _fresh_demo_rows(demo_dir):
    """The demo rows with absolute paths and no codes (the shared `demo_rows` may carry codes other tests added)."""
    return load_rows(demo_dir / "train.jsonl")


def test_a_repeated_row_id_is_a_bad_row(tmp_path, demo_dir, processor):
    demo_rows = _fresh_demo_rows(demo_dir)
    rows = [demo_rows[0], demo_rows[1], dict(demo_rows[2], id=demo_rows[0]["id"])]
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError, match=rf"^row {demo_rows[0]['id']}: duplicate id"):
        open_table(data, _data_cfg(data, on_bad_row="fail"), processor.audio_tokenizer)
    table = open_table(data, _data_cfg(data), processor.audio_tokenizer)
    assert len(table) == 2 and table.info["skipped"] == {"duplicate id": 1}


def test_the_table_keeps_every_clip_as_int16_codes_once(demo_table, demo_dir, processor):
    clips = demo_table.clips.data
    assert clips.schema.field("codes").type.value_type == "int16"
    assert len(clips) == len(set(clips.column("path").to_pylist())) == 28
    row = demo_table.row(5)
    item = row["messages"][-1]["content"][0]
    assert item["path"].startswith(str(demo_dir.resolve())) and item["codes"].dtype == torch.long
    assert torch.equal(item["codes"], encode_waveform(processor.audio_tokenizer, load_audio(item["path"])))


def test_edited_data_gets_a_new_table_and_the_outdated_one_is_removed(tmp_path, demo_dir, processor):
    demo_rows = _fresh_demo_rows(demo_dir)
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in demo_rows[:3]))
    first = open_table(data, _data_cfg(data), processor.audio_tokenizer)
    subset = open_table(data, _data_cfg(data, max_examples=2), processor.audio_tokenizer)
    data.write_text(data.read_text() + json.dumps(demo_rows[3]) + "\n")
    edited = open_table(data, _data_cfg(data), processor.audio_tokenizer)
    assert edited.built and len(edited) == 4 and edited.folder != first.folder
    assert not first.folder.exists() and not subset.folder.exists()  # both were built from the file as it was
    assert sorted(p.name for p in edited.folder.parent.glob("table-*")) == [edited.folder.name]


def test_data_on_a_read_only_mount_gets_its_table_in_the_user_cache(tmp_path, demo_dir, processor, monkeypatch):
    from higgs_train.data import table_place
    from higgs_train.runtime.cache import cache_root

    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _fresh_demo_rows(demo_dir)[:2]))
    monkeypatch.setattr(table_place, "_writable", lambda folder: False)  # as on a read-only mount (root ignores modes)
    table = open_table(data, _data_cfg(data), processor.audio_tokenizer)
    assert table.folder.is_relative_to(cache_root() / "tables") and len(table) == 2
    assert not (tmp_path / "codes").exists()
    assert open_table(data, _data_cfg(data), processor.audio_tokenizer).folder == table.folder


def test_lengths_measured_with_another_text_tokenizer_are_never_reused(demo_table, processor, model_config):
    from higgs_train.data.task_data import conversation_lengths, text_tokenizer_fingerprint

    other = copy.deepcopy(processor.tokenizer)
    other.add_tokens(["quiet room"])  # words of every demo scene become one token
    assert text_tokenizer_fingerprint(other) != text_tokenizer_fingerprint(processor.tokenizer)
    ours = conversation_lengths(demo_table, "smart_voice", ConversationCollator(processor.tokenizer, model_config))
    theirs = conversation_lengths(demo_table, "smart_voice", ConversationCollator(other, model_config))
    assert len(list(demo_table.folder.glob("positions-smart_voice-*.npy"))) == 2
    assert (theirs[0] < ours[0]).all()
