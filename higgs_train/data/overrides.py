"""Corrections made after a dataset was written (by hand or in higgs-studio's Data page), kept beside it in
`overrides.jsonl` and applied whenever its rows are read: a corrected transcript replaces the row's text, a rejected
clip's row is left out. The audio is never touched, so a rejected clip can be restored by a later line.

One JSON object per line, `{"id": ROW_ID, "text"?: "corrected transcript", "rejected"?: true|false}`; a later line
for the same id replaces the earlier one's keys, so the file is only ever appended to."""

from __future__ import annotations

import json
from pathlib import Path

from higgs_train.data.jsonl_lines import DataError, jsonl_objects
from higgs_train.runtime.logs import logger

FILE_NAME = "overrides.jsonl"


def read_overrides(folder: Path) -> dict[str, dict]:
    """Row id -> its corrections (later lines win), from `folder/overrides.jsonl`; {} when there is none."""
    path = Path(folder) / FILE_NAME
    if not path.is_file():
        return {}
    found: dict[str, dict] = {}
    for _, where, entry in jsonl_objects(path):
        if not isinstance(entry.get("id"), str):
            raise DataError(f"{where}: each line needs the row's \"id\" (a string); fix or delete the line")
        if "text" in entry and not (isinstance(entry["text"], str) and entry["text"].strip()):
            raise DataError(f"{where}: \"text\" must be a non-empty transcript; drop the key to keep the original")
        found.setdefault(entry["id"], {}).update({k: v for k, v in entry.items() if k in ("text", "rejected")})
    return found


def append_override(folder: Path, row_id: str, **changes) -> None:
    """Records corrections of one row (`text=...`, `rejected=...`) as a new line."""
    with open(Path(folder) / FILE_NAME, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"id": row_id, **changes}, ensure_ascii=False) + "\n")


def apply_overrides(rows: list[dict], folder: Path) -> list[dict]:
    """The rows with their corrected transcripts (the last user turn's text), rejected rows left out."""
    overrides = read_overrides(folder)
    if not overrides:
        return rows
    kept, corrected = [], 0
    for row in rows:
        change = overrides.get(str(row.get("id")), {})
        if change.get("rejected"):
            continue
        if "text" in change:
            users = [m for m in row["messages"] if m["role"] == "user"]
            if users:
                users[-1]["content"] = [{"type": "text", "text": change["text"]}]
                corrected += 1
        kept.append(row)
    logger.info(f"{Path(folder) / FILE_NAME}: {len(rows) - len(kept)} rows left out as rejected, {corrected} "
                "transcripts corrected")
    return kept
