"""Tasks: each Higgs workflow in a module of its own that owns both its training layout (`conversation`: a basic
text-to-speech row, and for clone tasks a reference row of the same speaker, laid out as the workflow's
conversation) and its inference prompt (`prompt`: the same layout from a few plain fields, without the target),
built from one `layout.layout`, so a prompt generated for sampling is the training conversation's prefix.

References come from other rows of the same speaker, chosen reproducibly from the seed over row indices.
"""

from __future__ import annotations

import random

import numpy as np

from higgs_train.data.conversations import DataError
from higgs_train.data.tasks import multi_speaker, multi_speaker_clone, smart_voice, voice_clone

TASKS = {"smart_voice": smart_voice, "multi_speaker": multi_speaker, "voice_clone": voice_clone,
         "multi_speaker_clone": multi_speaker_clone}
NO_REFERENCE = "no other clip of the same speaker to use as reference"


def check_task(task: str) -> None:
    if task not in TASKS:
        raise DataError(f"task={task!r} is not known; use one of {list(TASKS)}")


def needs_reference(task: str) -> bool:
    return TASKS[task].NEEDS_REFERENCE


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


def task_conversation(task: str, row: dict, reference: dict | None = None, description: str | None = None) -> dict:
    """The conversation `task` makes of `row` (freshly decoded, so it is not copied): `reference` is another row of
    its speaker (clone tasks), `description` its speaker's entry in speakers.json."""
    if needs_reference(task) and reference is None:
        raise ValueError(f"task={task} needs a reference row for row {row['id']}")
    return TASKS[task].conversation(row, reference, description)
