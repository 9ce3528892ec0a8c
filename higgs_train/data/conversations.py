"""Conversation records: loading our JSONL and checking each row, with errors that name the row and the field."""

from __future__ import annotations

import json
from pathlib import Path

ROLES = {"system", "scene", "user", "assistant"}


class DataError(ValueError):
    """A row the trainer cannot use; the message names the file, the row and what to fix."""


def validate(row: dict, where: str) -> None:
    messages = row.get("messages")
    if not isinstance(messages, list) or not messages:
        raise DataError(f"{where}: field 'messages' must be a non-empty list of {{role, content}} objects")
    if messages[0].get("role") != "system":
        raise DataError(f"{where}: messages[0] must have role 'system' (Higgs Audio prompts start with one)")
    for index, message in enumerate(messages):
        role = message.get("role")
        if role not in ROLES:
            raise DataError(f"{where}: messages[{index}].role is {role!r}; use one of {sorted(ROLES)}")
        content = message.get("content")
        if not isinstance(content, list) or not content:
            raise DataError(f"{where}: messages[{index}].content must be a non-empty list of items")
        for item in content:
            kind = item.get("type")
            if kind == "text" and not isinstance(item.get("text"), str):
                raise DataError(f"{where}: messages[{index}] has a text item without a 'text' string")
            if kind == "audio" and "path" not in item and "codes" not in item:
                raise DataError(f"{where}: messages[{index}] has an audio item without 'path' or 'codes'")
            if kind not in ("text", "audio"):
                raise DataError(f"{where}: messages[{index}] has an item of type {kind!r}; use 'text' or 'audio'")
            if kind == "audio" and role == "user":
                raise DataError(f"{where}: messages[{index}] puts audio in a user turn, which the model never sees;"
                                " put reference audio in an assistant turn or the scene")
        if role == "assistant" and any(item["type"] != "audio" for item in content):
            raise DataError(f"{where}: messages[{index}] (assistant) must hold audio items only")
    if not any(m["role"] == "assistant" for m in messages):
        raise DataError(f"{where}: no assistant turn, so nothing to learn; add the target audio as the last turn")


def load_jsonl(path: str | Path, max_examples: int | None = None) -> list[dict]:
    """Read conversation rows; audio paths are resolved relative to the JSONL file's folder."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file; point data.path at a conversation JSONL (see `higgs-prep --help`)")
    rows = []
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}:{line_number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(f"{where}: not valid JSON ({error.msg}); each line must be one JSON object") from None
            validate(row, where)
            for message in row["messages"]:
                for item in message["content"]:
                    if item["type"] == "audio" and "path" in item:
                        item["path"] = str((path.parent / item["path"]).resolve())
            row.setdefault("id", f"{path.stem}:{line_number}")
            rows.append(row)
            if max_examples is not None and len(rows) >= max_examples:
                break
    if not rows:
        raise DataError(f"{path}: holds no conversation rows")
    return rows
