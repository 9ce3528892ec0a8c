"""Inference prompts for the four workflows, from a few plain fields, laid out by the task modules themselves
(`higgs_train/data/tasks/`), so a fine-tuned model is asked exactly what it was taught:

- smart voice: `text` (+ `scene`, a description of the recording) (+ `speakers`, one description: the voice as
  speakers.json described it in training, a `SPEAKER0: ...` scene line);
- multi-speaker: `text` with `[SPEAKER0] ...` lines + `speakers`, one description per speaker;
- voice cloning: `text` + `reference_audio` (one clip) + `reference_text` (its transcript);
- multi-speaker cloning: `text` with `[SPEAKERn]` lines + `reference_audio`, a list with one clip per speaker.
"""

from __future__ import annotations

from pathlib import Path

from higgs_train.data.conversations import DataError, jsonl_objects
from higgs_train.data.tasks import TASKS
from higgs_train.data.tasks.layout import SPEAKER_TAG
from higgs_train.evaluate.list_checks import checked_clip, every_line
from higgs_train.evaluate.sample_files import check_distinct_names

FIELDS = ("id", "text", "scene", "speakers", "reference_audio", "reference_text")


def _audio(path: str, folder: Path, where: str) -> dict:
    if not isinstance(path, str) or not path:
        raise DataError(f"{where}: reference_audio must be the path of an audio file, not {path!r}")
    return {"type": "audio", "path": checked_clip(path, folder, where, "reference_audio")}


def prompt_task(prompt: dict) -> str:
    """The workflow a prompt's fields ask for."""
    references = prompt.get("reference_audio")
    if isinstance(references, list):
        return "multi_speaker_clone"
    if references:
        return "voice_clone"
    return "multi_speaker" if SPEAKER_TAG.search(prompt["text"]) else "smart_voice"


def prompt_conversation(prompt: dict, where: str, folder: Path = Path(".")) -> dict:
    """A conversation that ends where the model starts speaking; audio paths are taken relative to `folder`."""
    unknown = sorted(set(prompt) - set(FIELDS))
    if unknown:
        raise DataError(f"{where}: unknown field(s) {unknown}; a prompt has {list(FIELDS)}")
    text = prompt.get("text")
    if not isinstance(text, str) or not text.strip():
        raise DataError(f"{where}: 'text' (what to say) is missing or empty")
    references = prompt.get("reference_audio") or []
    references = references if isinstance(references, list) else [references]
    if references and prompt.get("speakers"):
        raise DataError(f"{where}: give each speaker's voice as reference_audio or as a description in speakers, "
                        "not both")
    task = prompt_task(prompt)
    if task == "voice_clone" and not prompt.get("reference_text"):
        raise DataError(f"{where}: voice cloning needs 'reference_text', the transcript of {references[0]}")
    messages = TASKS[task].prompt(text, prompt.get("scene"), list(prompt.get("speakers") or []),
                                  [_audio(path, folder, where) for path in references], prompt.get("reference_text"))
    return {"id": str(prompt.get("id", "sample")), "messages": messages}


def load_prompts(path: str | Path) -> list[dict]:
    """One prompt per JSONL line (fields as above; `id` names its wav, else `prompt_<line>`)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such prompts file (JSONL, one {{\"text\": ...}} object per line)")
    conversations = every_line(jsonl_objects(path), lambda line_number, where, prompt: prompt_conversation(
        {"id": f"prompt_{line_number}", **prompt}, where, path.parent), path)
    if not conversations:
        raise DataError(f"{path}: holds no prompt")
    check_distinct_names(conversations, str(path))
    return conversations
