"""Task layouts: turn one basic text-to-speech row into the conversation of a Higgs workflow, when its index is asked.

A basic row is system (+ scene) + user text + assistant audio, with a `speaker`. The target is always the row's own
clip; references come from other rows of the same speaker, chosen reproducibly from the seed over row indices.
"""

from __future__ import annotations

import random

import numpy as np

from higgs_train.data.conversations import DataError

TASKS = ("smart_voice", "multi_speaker", "voice_clone", "multi_speaker_clone")
CLONE_TASKS = ("voice_clone", "multi_speaker_clone")
NO_REFERENCE = "no other clip of the same speaker to use as reference"


def check_task(task: str) -> None:
    if task not in TASKS:
        raise DataError(f"task={task!r} is not known; use one of {list(TASKS)}")


def choose_references(speakers: list, seed: int) -> np.ndarray:
    """For each row, the index of another row of the same speaker (never itself), or -1 where there is none or the
    row has no speaker. Speakers in order of their names, rows in dataset order, one draw per row that has partners,
    so a seed always gives the same references."""
    groups: dict = {}
    for index, speaker in enumerate(speakers):
        groups.setdefault(speaker, []).append(index)
    rng = random.Random(seed)
    chosen = np.full(len(speakers), -1, dtype=np.int64)
    for speaker in sorted(groups, key=str):
        group = groups[speaker]
        if speaker is None or len(group) < 2:
            continue
        for position, index in enumerate(group):
            pick = rng.choice(range(len(group) - 1))  # among the others: the group without this row
            chosen[index] = group[pick + (pick >= position)]
    return chosen


def _target(row: dict) -> tuple[str, dict]:
    """The row's last user text and its last assistant audio item."""
    messages = row["messages"]
    user = [m for m in messages if m["role"] == "user"]
    assistant = [m for m in messages if m["role"] == "assistant"]
    if not user:
        raise DataError(f"row {row['id']}: this task needs a user turn with the transcript")
    text = " ".join(i["text"].strip() for i in user[-1]["content"] if i["type"] == "text")
    return text, assistant[-1]["content"][-1]


def _head(row: dict) -> tuple[dict, list[dict]]:
    """The system message and the scene items (empty when the row has no scene)."""
    messages = row["messages"]
    scene = messages[1]["content"] if len(messages) > 1 and messages[1]["role"] == "scene" else []
    return messages[0], list(scene)


def _conversation(row: dict, system: dict, scene: list[dict], turns: list[dict]) -> dict:
    messages = [system] + ([{"role": "scene", "content": scene}] if scene else []) + turns
    return {**{k: v for k, v in row.items() if k != "messages"}, "messages": messages}


def _described(row: dict, description: str | None) -> dict:
    """The row with its speaker's description (speakers.json) as a `SPEAKER0: ...` line in the scene, the way the
    model's prompts describe a voice, so each voice is learnt under its own description."""
    if not description:
        return row
    system, scene = _head(row)
    rest = row["messages"][2 if scene else 1:]
    return _conversation(row, system, scene + [{"type": "text", "text": f"SPEAKER0: {description}"}], rest)


def task_conversation(task: str, row: dict, reference: dict | None = None, description: str | None = None) -> dict:
    """The conversation `task` makes of `row` (freshly decoded, so it is not copied): `reference` is another row of
    its speaker (clone tasks), `description` its speaker's entry in speakers.json."""
    if task == "smart_voice":
        return _described(row, description)
    text, audio = _target(row)
    system, scene = _head(row)
    target = {"role": "assistant", "content": [audio], "supervised": True}
    if task == "multi_speaker":
        line = description if description is not None else str(row.get("speaker") or "")
        scene = scene + [{"type": "text", "text": f"SPEAKER0: {line}".strip()}]
        turns = [{"role": "user", "content": [{"type": "text", "text": f"[SPEAKER0] {text}"}]}, target]
        return _conversation(row, system, scene, turns)
    if reference is None:
        raise ValueError(f"task={task} needs a reference row for row {row['id']}")
    ref_text, ref_audio = _target(reference)
    if task == "voice_clone":
        turns = [
            {"role": "user", "content": [{"type": "text", "text": ref_text}]},
            {"role": "assistant", "content": [ref_audio], "supervised": False},
            {"role": "user", "content": [{"type": "text", "text": text}]},
            target,
        ]
    else:
        scene = scene + [{"type": "text", "text": "SPEAKER0:"}, ref_audio]
        turns = [{"role": "user", "content": [{"type": "text", "text": f"[SPEAKER0] {text}"}]}, target]
    return _conversation(row, system, scene, turns)
