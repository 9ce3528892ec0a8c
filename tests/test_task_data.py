"""The training table and the conversations built from it when their index is asked: the same conversations, lengths
and left-out counts as the in-memory task builders made before (recorded in tests/data/task_conversations.json at
07560ca, from `prepare_conversations` on the demo set), read from memory-mapped files."""

import copy
import hashlib
import json
import os
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from higgs_train.data.collator import ConversationCollator
from higgs_train.data.table import open_table
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
    return open_table(_data_cfg(demo_dir / "train.jsonl"), processor.audio_tokenizer, show_progress=False)


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("seed", [0, 3])
def test_each_task_gives_the_conversations_the_in_memory_builders_gave(task, seed, demo_table, demo_dir, processor,
                                                                       model_config):
    collator = ConversationCollator(processor.tokenizer, model_config)
    dataset, skipped = task_dataset(demo_table, task, seed, collator, _data_cfg(demo_dir / "train.jsonl"),
                                    show_progress=False)
    recorded = RECORDED[f"{task}/{seed}"]
    conversations = [dataset[i] for i in range(len(dataset))]
    assert [c["id"] for c in conversations] == recorded["ids"] and skipped == recorded["skipped"]
    built = [_recorded_form(c, demo_dir) for c in conversations]
    assert built[1] == recorded["example"]
    assert hashlib.sha256(json.dumps(built, sort_keys=True).encode()).hexdigest() == recorded["sha256"]
    assert dataset.lengths.tolist() == recorded["num_positions"]
    assert [collator.encode(c["messages"]).num_positions for c in conversations] == recorded["num_positions"]
