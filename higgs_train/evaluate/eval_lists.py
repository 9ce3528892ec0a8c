"""Test lists for `higgs-eval`: each line one utterance to synthesise and judge, as a prompt conversation (laid out by
the task modules) with, where the list gives one, the ground-truth clip for the expected length.

- Seed-TTS-eval `meta.lst`: `utt|prompt_text|prompt_wav|target_text[|target_wav]`, wav paths relative to the list's
  folder: zero-shot voice cloning from the prompt clip and its transcript.
- The project's JSONL: one higgs-generate prompt per line (`text`, `reference_audio`, `reference_text`, `scene`,
  `speakers`, `id`, plus an optional `target_audio`), or a conversation row (`messages`, as training reads them; its
  last assistant clip is the ground truth).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from higgs_train.data.collator import prompt_messages
from higgs_train.data.conversations import DataError, jsonl_objects, validate
from higgs_train.data.tasks.layout import target_audio
from higgs_train.evaluate.list_checks import checked_clip, every_line, text_lines
from higgs_train.evaluate.prompts import prompt_conversation
from higgs_train.evaluate.sample_files import check_distinct_names

META_FIELDS = "utt|prompt_text|prompt_wav|target_text[|target_wav]"


def _meta_line(path: Path, number: int, where: str, line: str) -> dict:
    fields = line.strip().split("|")
    if len(fields) not in (4, 5) or not all(f.strip() for f in fields):
        raise DataError(f"{where}: expected {META_FIELDS} (4 or 5 non-empty fields separated by |), found "
                        f"{len(fields)} field(s)")
    utt, prompt_text, prompt_wav, text = (f.strip() for f in fields[:4])
    conversation = prompt_conversation({"id": utt, "text": text, "reference_audio": prompt_wav,
                                        "reference_text": prompt_text}, where, path.parent)
    if len(fields) == 5:
        conversation["target_path"] = checked_clip(fields[4].strip(), path.parent, where, "target_wav")
    return conversation


def _jsonl_line(path: Path, number: int, where: str, record: dict) -> dict:
    if "messages" in record:
        validate(record, where)
        for message in record["messages"]:
            for item in message["content"]:
                if item["type"] == "audio" and "path" in item:
                    item["path"] = checked_clip(item["path"], path.parent, where, "audio")
        target = target_audio(record["messages"])
        conversation = {"id": str(record.get("id", f"utt_{number}")), "messages": prompt_messages(record["messages"])}
        if target is not None and "path" in target:
            conversation["target_path"] = target["path"]
        return conversation
    fields = {k: v for k, v in record.items() if k != "target_audio"}
    conversation = prompt_conversation({"id": f"utt_{number}", **fields}, where, path.parent)
    if record.get("target_audio"):
        conversation["target_path"] = checked_clip(record["target_audio"], path.parent, where, "target_audio")
    return conversation


def load_test_list(path: str | Path) -> list[dict]:
    """The list's utterances in order; malformed lines and unusable clips are counted and listed in one error, a
    repeated id (or two that would write one wav) is one error naming it."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"list={path} does not exist; give a Seed-TTS-eval meta.lst, a JSONL of prompts, or "
                        "builtin:demo-eval")
    if path.suffix == ".jsonl":
        utterances = every_line(jsonl_objects(path), partial(_jsonl_line, path), path)
    else:
        lines = ((n, where, line) for n, where, line in text_lines(path) if line.strip())
        utterances = every_line(lines, partial(_meta_line, path), path)
    if not utterances:
        raise DataError(f"{path}: holds no utterance")
    seen: set[str] = set()
    for utterance in utterances:
        if utterance["id"] in seen:
            raise DataError(f"{path}: utterance id {utterance['id']!r} appears twice; each needs its own (it names "
                            "its wav)")
        seen.add(utterance["id"])
    check_distinct_names(utterances, str(path))
    return utterances
