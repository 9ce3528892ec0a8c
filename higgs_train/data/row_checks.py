"""The checks every training row passes, whether `higgs-prep convert` writes it or training reads it straight from a
conversation JSONL: a transcript, a known speaker (when a speakers.json lists the speakers), and audio that decodes,
is finite, not silent and within the length limits. A failing row raises `BadRow` with a countable reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from higgs_train.data.audio_checks import BadRow, checked_waveform, decode
from higgs_train.data.tasks.layout import last_user_text


def check_text(messages: list[dict], speaker: str | None, speakers: dict | None) -> None:
    """The row has something to say, by a speaker the dataset knows (when it lists its speakers)."""
    if not last_user_text(messages):
        raise BadRow("empty transcript")
    if speakers is not None and speaker not in speakers:
        raise BadRow("unknown speaker", f"{speaker!r} is not in speakers.json")


def audio_items(messages: list[dict]) -> list[dict]:
    return [item for m in messages for item in m["content"] if item.get("type") == "audio"]


def check_audio(messages: list[dict], min_seconds: float, max_seconds: float, decode_files: bool = True) -> None:
    """Every clip of the row passes `checked_waveform`; `decode_files=False` only checks that files exist (for
    datasets `higgs-prep convert` has checked already)."""
    for item in audio_items(messages):
        if "codes" in item:
            continue
        if "array" in item:
            checked_waveform(np.asarray(item["array"], dtype=np.float32), item["sampling_rate"], min_seconds,
                             max_seconds)
        elif not decode_files:
            if not Path(item["path"]).is_file():
                raise BadRow("missing audio file", item["path"])
        else:
            try:
                checked_waveform(*decode(item["path"]), min_seconds, max_seconds)
            except BadRow as error:  # named by its file
                path, detail = item["path"], error.detail
                detail = detail if path in detail else f"{path} ({detail})" if detail else path
                raise BadRow(error.reason, detail) from None
