"""Task builders: turn basic text-to-speech rows into the conversation layout of a Higgs workflow.

A basic row is system (+ scene) + user text + assistant audio, with a `speaker`. The target is always the row's own
clip; references come from other clips of the same speaker, chosen reproducibly from the seed.
"""

from __future__ import annotations

import copy
import random
from collections import defaultdict

from higgs_train.data.conversations import DataError

TASKS = ("smart_voice", "multi_speaker", "voice_clone", "multi_speaker_clone")


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
    return copy.deepcopy(messages[0]), copy.deepcopy(scene)


def _conversation(row: dict, system: dict, scene: list[dict], turns: list[dict]) -> dict:
    messages = [system] + ([{"role": "scene", "content": scene}] if scene else []) + turns
    return {**{k: v for k, v in row.items() if k != "messages"}, "messages": messages}


def _references(rows: list[dict], seed: int) -> dict[str, dict]:
    """For each row id, another row of the same speaker (never itself); rows with no such partner are absent."""
    by_speaker = defaultdict(list)
    for row in rows:
        by_speaker[row.get("speaker")].append(row)
    rng = random.Random(seed)
    chosen = {}
    for speaker in sorted(by_speaker, key=str):
        group = by_speaker[speaker]
        for row in group:
            others = [other for other in group if other["id"] != row["id"]]
            if speaker is not None and others:
                chosen[row["id"]] = rng.choice(others)
    return chosen


def _described(row: dict, description: str | None) -> dict:
    """The row with its speaker's description (speakers.json) as a `SPEAKER0: ...` line in the scene, the way the
    model's prompts describe a voice, so each voice is learnt under its own description."""
    if not description:
        return row
    system, scene = _head(row)
    rest = row["messages"][2 if scene else 1:]
    return _conversation(row, system, scene + [{"type": "text", "text": f"SPEAKER0: {description}"}],
                         copy.deepcopy(rest))


def build_task(rows: list[dict], task: str, seed: int, speaker_descriptions: dict[str, str] | None = None):
    """Returns (conversations, skipped) where `skipped` counts rows that cannot form this task, by reason."""
    if task not in TASKS:
        raise DataError(f"task={task!r} is not known; use one of {list(TASKS)}")
    descriptions = speaker_descriptions or {}
    references = _references(rows, seed) if task in ("voice_clone", "multi_speaker_clone") else {}
    conversations, skipped = [], defaultdict(int)
    for row in rows:
        if task == "smart_voice":
            conversations.append(_described(row, descriptions.get(row.get("speaker"))))
            continue
        text, audio = _target(row)
        system, scene = _head(row)
        target = {"role": "assistant", "content": [copy.deepcopy(audio)], "supervised": True}
        if task == "multi_speaker":
            description = descriptions.get(row.get("speaker"), str(row.get("speaker", "")))
            scene = scene + [{"type": "text", "text": f"SPEAKER0: {description}".strip()}]
            turns = [{"role": "user", "content": [{"type": "text", "text": f"[SPEAKER0] {text}"}]}, target]
        else:
            reference = references.get(row["id"])
            if reference is None:
                skipped["no other clip of the same speaker to use as reference"] += 1
                continue
            ref_text, ref_audio = _target(reference)
            if task == "voice_clone":
                turns = [
                    {"role": "user", "content": [{"type": "text", "text": ref_text}]},
                    {"role": "assistant", "content": [copy.deepcopy(ref_audio)], "supervised": False},
                    {"role": "user", "content": [{"type": "text", "text": text}]},
                    target,
                ]
            else:
                scene = scene + [{"type": "text", "text": "SPEAKER0:"}, copy.deepcopy(ref_audio)]
                turns = [{"role": "user", "content": [{"type": "text", "text": f"[SPEAKER0] {text}"}]}, target]
        conversations.append(_conversation(row, system, scene, turns))
    return conversations, dict(skipped)
