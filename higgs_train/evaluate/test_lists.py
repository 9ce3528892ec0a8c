"""Test lists for `higgs-eval`: each line one utterance to synthesise and judge, as a prompt conversation (laid out by
the task modules) with, where the list gives one, the ground-truth clip for the expected length.

- Seed-TTS-eval `meta.lst`: `utt|prompt_text|prompt_wav|target_text[|target_wav]`, wav paths relative to the list's
  folder: zero-shot voice cloning from the prompt clip and its transcript.
- The project's JSONL: one higgs-generate prompt per line (`text`, `reference_audio`, `reference_text`, `scene`,
  `speakers`, `id`, plus an optional `target_audio`), or a conversation row (`messages`, as training reads them; its
  last assistant clip is the ground truth).
"""

from __future__ import annotations

from pathlib import Path

from higgs_train.data.collator import prompt_messages
from higgs_train.data.conversations import DataError, jsonl_objects, validate
from higgs_train.data.tasks.layout import target_audio
from higgs_train.evaluate.prompts import prompt_conversation

META_FIELDS = "utt|prompt_text|prompt_wav|target_text[|target_wav]"


def _existing(path: str, folder: Path, where: str, field: str) -> str:
    resolved = (folder / path).resolve()
    if not resolved.is_file():
        raise DataError(f"{where}: {field} {path} does not exist")
    return str(resolved)


def _meta_lines(path: Path) -> list[dict]:
    utterances = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where, fields = f"{path}:{number}", line.strip().split("|")
        if len(fields) not in (4, 5) or not all(f.strip() for f in fields):
            raise DataError(f"{where}: expected {META_FIELDS} (4 or 5 non-empty fields separated by |), found "
                            f"{len(fields)} field(s)")
        utt, prompt_text, prompt_wav, text = (f.strip() for f in fields[:4])
        conversation = prompt_conversation({"id": utt, "text": text, "reference_audio": prompt_wav,
                                            "reference_text": prompt_text}, where, path.parent)
        if len(fields) == 5:
            conversation["target_path"] = _existing(fields[4].strip(), path.parent, where, "target_wav")
        utterances.append(conversation)
    return utterances


def _jsonl_lines(path: Path) -> list[dict]:
    utterances = []
    for number, where, record in jsonl_objects(path):
        if "messages" in record:
            validate(record, where)
            for message in record["messages"]:
                for item in message["content"]:
                    if item["type"] == "audio" and "path" in item:
                        item["path"] = _existing(item["path"], path.parent, where, "audio")
            target = target_audio(record["messages"])
            conversation = {"id": str(record.get("id", f"utt_{number}")),
                            "messages": prompt_messages(record["messages"])}
            if target is not None and "path" in target:
                conversation["target_path"] = target["path"]
        else:
            fields = {k: v for k, v in record.items() if k != "target_audio"}
            conversation = prompt_conversation({"id": f"utt_{number}", **fields}, where, path.parent)
            if record.get("target_audio"):
                conversation["target_path"] = _existing(record["target_audio"], path.parent, where, "target_audio")
        utterances.append(conversation)
    return utterances


def load_test_list(path: str | Path) -> list[dict]:
    """The list's utterances in order; a malformed line, a missing clip or a repeated id is one error naming it."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"list={path} does not exist; give a Seed-TTS-eval meta.lst, a JSONL of prompts, or "
                        "builtin:demo-eval")
    utterances = _jsonl_lines(path) if path.suffix == ".jsonl" else _meta_lines(path)
    if not utterances:
        raise DataError(f"{path}: holds no utterance")
    seen: set[str] = set()
    for utterance in utterances:
        if utterance["id"] in seen:
            raise DataError(f"{path}: utterance id {utterance['id']!r} appears twice; each needs its own (it names "
                            "its wav)")
        seen.add(utterance["id"])
    return utterances
