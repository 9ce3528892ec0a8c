"""A dataset's clips for the Data page: every row with its transcript, its quality scores (`scores.jsonl`, written
by ingest and score) and whether it is rejected, with the corrections of `overrides.jsonl` applied on top."""

from __future__ import annotations

import json
from pathlib import Path

from higgs_train.data.overrides import read_overrides
from higgs_train.studio.runs import read_jsonl


def _rows(folder: Path) -> list[dict]:
    """(id, speaker, text, audio) of each row, without the checks training makes (the page shows what is there)."""
    from higgs_train.data.conversations import is_prepared_dataset

    if is_prepared_dataset(folder):
        import datasets

        found = datasets.load_from_disk(str(folder))
        rows = [{"id": r["id"], "speaker": r["speaker"], "messages": json.loads(r["messages"])} for r in found]
        base = folder
    else:
        jsonl = folder if folder.is_file() else folder / "train.jsonl"
        rows, base = read_jsonl(jsonl), jsonl.parent
    clips = []
    for row in rows:
        users = [m for m in row["messages"] if m["role"] == "user"]
        audio = [m for m in row["messages"] if m["role"] == "assistant"][-1]["content"][-1]
        text = " ".join(i.get("text", "") for i in users[-1]["content"]) if users else ""
        clips.append({"id": str(row["id"]), "speaker": row.get("speaker") or "", "text": text,
                      "audio": str(base / audio["path"]) if "path" in audio else ""})
    return clips


def dataset_clips(folder: Path) -> list[dict]:
    """Each row's clip with its transcript (corrected where overridden), whether it is rejected and its numeric
    scores."""
    from higgs_train.data.conversations import dataset_root

    root = dataset_root(folder) if folder.is_file() else folder
    scores = {str(s["id"]): s for s in read_jsonl(root / "scores.jsonl")}
    overrides = read_overrides(root)
    clips = []
    for clip in _rows(folder):
        change = overrides.get(clip["id"], {})
        numbers = {k: v for k, v in scores.get(clip["id"], {}).items() if isinstance(v, (int, float))
                   and not isinstance(v, bool) and k not in ("n",)}
        clips.append({**clip, "text": change.get("text", clip["text"]), "rejected": bool(change.get("rejected")),
                      "corrected": "text" in change, **numbers})
    return clips


def score_names(clips: list[dict]) -> list[str]:
    fixed = {"id", "speaker", "text", "audio", "rejected", "corrected"}
    return sorted({k for clip in clips for k, v in clip.items() if k not in fixed and isinstance(v, (int, float))})
