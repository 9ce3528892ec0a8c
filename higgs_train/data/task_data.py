"""The conversations of one task over a training table, built when their index is asked, with the lengths the
sampler needs read from a file measured once per task and text tokenizer.

The length of a conversation is additive over its turns (each turn is tokenized on its own), so a clone task's
conversation of row r with reference s has `own[r] + share[s]` positions: two numbers per row, whatever the seed.
"""

from __future__ import annotations

import hashlib
import json
import random

import numpy as np
import torch

from higgs_train.data.conversations import DataError
from higgs_train.data.table import TrainingTable
from higgs_train.data.tasks import NO_REFERENCE, choose_references, needs_reference, task_conversation
from higgs_train.runtime import atomic
from higgs_train.runtime.logs import logger
from higgs_train.runtime.progress import progress_bar


def text_tokenizer_fingerprint(tokenizer) -> str:
    """A hash of what decides the token ids: the fast tokenizer's full definition (vocabulary, merges, added
    tokens), or the vocabulary of a slow one."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    spec = backend.to_str() if backend is not None else json.dumps(sorted(tokenizer.get_vocab().items()))
    return hashlib.sha256((spec + str(tokenizer.bos_token)).encode()).hexdigest()[:16]


def _blank_row(num_codebooks: int) -> dict:
    """A row with empty text and a clip of no frames: what a conversation's length is measured against."""
    return {"id": "", "speaker": None, "messages": [
        {"role": "system", "content": [{"type": "text", "text": ""}]},
        {"role": "user", "content": [{"type": "text", "text": ""}]},
        {"role": "assistant", "content": [{"type": "audio", "codes": np.zeros((num_codebooks, 0), np.int16)}]}]}


def _measure(table: TrainingTable, task: str, collator) -> np.ndarray:
    """(2, rows): own and share. With a blank row B, len(r, s) = len(r, B) + len(B, s) - len(B, B)."""
    descriptions = table.info["speakers"]
    blank = _blank_row(collator.num_codebooks)
    clone = needs_reference(task)
    known: dict[str, int] = {}

    def count(row, reference):
        conversation = task_conversation(task, row, reference, descriptions.get(row["speaker"]))
        return collator.count_positions(conversation["messages"], known)

    base = count(blank, blank) if clone else 0
    measured = np.zeros((2, len(table)), dtype=np.int64)
    for index in progress_bar(range(len(table)), desc=f"measuring {task} conversations", unit="row"):
        if len(known) > 10_000:  # bounded: what repeats (system and assistant turns) comes back at once
            known.clear()
        row = table.row(index, tensors=False)
        if clone:
            measured[:, index] = count(row, blank) - base, count(blank, row)
        else:
            measured[0, index] = count(row, None)
    return measured


def conversation_lengths(table: TrainingTable, task: str, collator) -> np.ndarray:
    """(own, share) per row, measured the first time this table meets this task and text tokenizer."""
    path = table.folder / f"positions-{task}-{text_tokenizer_fingerprint(collator.tokenizer)}.npy"
    if path.is_file():
        return np.load(path)
    measured = _measure(table, task, collator)
    with atomic.atomic_output(path, unique=True) as partial:
        with open(partial, "wb") as handle:
            np.save(handle, measured)
    return measured


class TaskDataset(torch.utils.data.Dataset):
    """Conversation i is the task's layout of table row `rows[i]`, with row `references[i]` as its reference (clone
    tasks; -1 for none); `lengths[i]` is its number of positions."""

    def __init__(self, table: TrainingTable, task: str, rows: np.ndarray, references: np.ndarray,
                 lengths: np.ndarray):
        self.table, self.task, self.rows, self.references, self.lengths = table, task, rows, references, lengths

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        row = self.table.row(int(self.rows[index]))
        reference = self.references[index]
        description = self.table.info["speakers"].get(row["speaker"])
        return task_conversation(self.task, row, self.table.row(int(reference)) if reference >= 0 else None,
                                 description)

    def subset(self, positions: np.ndarray) -> TaskDataset:
        return TaskDataset(self.table, self.task, self.rows[positions], self.references[positions],
                           self.lengths[positions])

    def split(self, size: int, seed: int) -> tuple[TaskDataset, TaskDataset]:
        """(training, validation): `size` conversations held out, chosen from the seed, both in dataset order."""
        validation = held_out(len(self), size, seed)
        return self.subset(np.flatnonzero(~validation)), self.subset(np.flatnonzero(validation))


def held_out(count: int, size: int, seed: int, what: str = "conversations") -> np.ndarray:
    """(count,) True for the `size` examples the seed holds out for validation (`eval.val_size`)."""
    if size and size >= count:
        raise DataError(f"eval.val_size={size} would hold out all {count} usable {what}; lower it "
                        "(eval.val_size=0 turns the validation split off)")
    mask = np.zeros(count, dtype=bool)
    if size:
        mask[random.Random(seed).sample(range(count), size)] = True
    return mask


def task_dataset(table: TrainingTable, task: str, seed: int, collator, data_cfg) -> tuple[TaskDataset, dict]:
    """The task's conversations over the whole table, less those without a reference (clone tasks) or longer than
    `data.max_positions` (never truncated); returns them and the counts of what was left out, by reason."""
    own, share = conversation_lengths(table, task, collator)
    skipped = dict(table.info["skipped"])
    if needs_reference(task):
        references = choose_references(table.speakers(), seed)
        usable = references >= 0
        lengths = own + np.where(usable, share[references], 0)
        if (~usable).any():
            skipped[NO_REFERENCE] = int((~usable).sum())
    else:
        references = np.full(len(table), -1, dtype=np.int64)
        usable, lengths = np.ones(len(table), dtype=bool), own
    too_long = usable & (lengths > data_cfg.max_positions)
    if too_long.any():
        limit = data_cfg.max_positions
        if data_cfg.on_bad_row == "fail":
            first = int(np.flatnonzero(too_long)[0])
            raise DataError(f"row {table.row(first, tensors=False)['id']}: {lengths[first]} positions exceed "
                            f"data.max_positions={limit}; raise it or set data.on_bad_row=skip")
        skipped[f"longer than data.max_positions={limit}"] = int(too_long.sum())
        logger.warning(f"left out {int(too_long.sum())} of {int(usable.sum())} conversations longer than "
                       f"data.max_positions={limit} (never truncated; the shortest of them has "
                       f"{lengths[too_long].min()} positions, the longest {lengths[too_long].max()})")
    kept = np.flatnonzero(usable & ~too_long)
    if not len(kept):
        hint = f"; raise data.max_positions to at least {lengths[too_long].min()}" if too_long.any() else ""
        raise DataError(f"{table.info['source']}: no usable conversation for task={task} (left out: "
                        f"{skipped or 'none'}){hint}")
    return TaskDataset(table, task, kept, references[kept], lengths[kept]), skipped
