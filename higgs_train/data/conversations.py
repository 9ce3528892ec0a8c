"""Conversation records: one schema for a training example, loaded from JSONL or a prepared dataset and checked row
by row, with errors that name the row and the field.

A row is `{"id", "speaker", "messages": [{"role", "content": [items], "supervised"?}]}`; roles are system / scene /
user / assistant; an item is `{"type": "text", "text"}` or `{"type": "audio"}` with a `path`, an `array` and its
`sampling_rate`, or `codes` (K x T). By default only the last assistant turn is supervised.
"""

from __future__ import annotations

import json
from pathlib import Path

from higgs_train.data.jsonl_lines import DataError, jsonl_objects
from higgs_train.data.overrides import apply_overrides

ROLES = {"system", "scene", "user", "assistant"}


def validate(row: dict, where: str) -> None:
    messages = row.get("messages")
    if not isinstance(messages, list) or not messages:
        raise DataError(f"{where}: field 'messages' must be a non-empty list of {{role, content}} objects")
    if not isinstance(messages[0], dict) or messages[0].get("role") != "system":
        raise DataError(f"{where}: messages[0] must have role 'system' (Higgs Audio prompts start with one)")
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise DataError(f"{where}: messages[{index}] is {type(message).__name__}, not a {{role, content}} object")
        role = message.get("role")
        if role not in ROLES:
            raise DataError(f"{where}: messages[{index}].role is {role!r}; use one of {sorted(ROLES)}")
        content = message.get("content")
        if not isinstance(content, list) or not content:
            raise DataError(f"{where}: messages[{index}].content must be a non-empty list of items")
        for item in content:
            if not isinstance(item, dict):
                raise DataError(f"{where}: messages[{index}].content holds a {type(item).__name__}, not an item "
                                "object like {\"type\": \"text\", \"text\": ...}")
            kind = item.get("type")
            if kind == "text" and not isinstance(item.get("text"), str):
                raise DataError(f"{where}: messages[{index}] has a text item without a 'text' string")
            if kind == "audio" and not ({"path", "codes"} & item.keys() or {"array", "sampling_rate"} <= item.keys()):
                raise DataError(f"{where}: messages[{index}] has an audio item without 'path', 'codes' or "
                                "'array' + 'sampling_rate'")
            if kind not in ("text", "audio"):
                raise DataError(f"{where}: messages[{index}] has an item of type {kind!r}; use 'text' or 'audio'")
            if kind == "audio" and role == "user":
                raise DataError(f"{where}: messages[{index}] puts audio in a user turn, which the model never sees;"
                                " put reference audio in an assistant turn or the scene")
        if role == "assistant" and any(item["type"] != "audio" for item in content):
            raise DataError(f"{where}: messages[{index}] (assistant) must hold audio items only")
    if not any(m["role"] == "assistant" for m in messages):
        raise DataError(f"{where}: no assistant turn, so nothing to learn; add the target audio as the last turn")


def _resolve_paths(row: dict, folder: Path) -> None:
    for message in row["messages"]:
        for item in message["content"]:
            if item["type"] == "audio" and "path" in item:
                item["path"] = str((folder / item["path"]).resolve())


def is_prepared_dataset(path: str | Path) -> bool:
    """A folder written by `higgs-prep convert` (a `datasets` dataset with a `messages` column)."""
    return (Path(path) / "state.json").is_file()


def dataset_root(path: str | Path) -> Path:
    """The folder audio paths are relative to, and where `higgs-prep encode` keeps the code cache."""
    path = Path(path)
    return path if is_prepared_dataset(path) else path.parent


def _load_prepared(path: Path, max_examples: int | None) -> list[dict]:
    import datasets

    dataset = datasets.load_from_disk(str(path))
    if max_examples is not None:
        dataset = dataset.select(range(min(max_examples, len(dataset))))
    rows = []
    for index, record in enumerate(dataset):
        row = {"id": record["id"], "speaker": record["speaker"], "messages": json.loads(record["messages"])}
        validate(row, f"{path}[{index}]")
        _resolve_paths(row, path)
        rows.append(row)
    return rows


def load_rows(path: str | Path, max_examples: int | None = None) -> list[dict]:
    """Conversation rows from a JSONL file or a `higgs-prep convert` folder; audio paths made absolute, the corrections
    of an `overrides.jsonl` beside them applied."""
    path = Path(path)
    if is_prepared_dataset(path):
        rows = _load_prepared(path, max_examples)
    elif path.is_file():
        rows = _load_jsonl(path, max_examples)
    else:
        raise DataError(f"{path}: no such file or prepared dataset; point data.path at a conversation JSONL or a "
                        "folder written by `higgs-prep convert`")
    rows = apply_overrides(rows, dataset_root(path))
    if not rows:
        raise DataError(f"{path}: holds no conversation rows")
    return rows


def _load_jsonl(path: Path, max_examples: int | None) -> list[dict]:
    rows = []
    for line_number, where, row in jsonl_objects(path):
        validate(row, where)
        _resolve_paths(row, path.parent)
        row.setdefault("id", f"{path.stem}:{line_number}")
        rows.append(row)
        if max_examples is not None and len(rows) >= max_examples:
            break
    return rows
