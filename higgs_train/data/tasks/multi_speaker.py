"""multi_speaker: `[SPEAKER0] ...` lines in the user turn, each speaker described in the scene (`SPEAKER0:
description`, from speakers.json, else the speaker's name)."""

from __future__ import annotations

from higgs_train.data.tasks.layout import (
    head,
    last_user_text,
    layout,
    spoken_clip,
    system_message,
    tagged,
    text_item,
    voice_items,
    with_messages,
)

NEEDS_REFERENCE = False


def conversation(row: dict, reference: dict | None, description: str | None) -> dict:
    system, scene = head(row["messages"])
    voice = description if description is not None else str(row.get("speaker") or "")
    return with_messages(row, layout(system, scene + voice_items([voice]), tagged(last_user_text(row["messages"])),
                                     target=spoken_clip(row["messages"])))


def prompt(text: str, scene: str | None = None, speakers: list[str] = (), references: list[dict] = (),
           reference_text: str | None = None) -> list[dict]:
    return layout(system_message(), ([text_item(scene)] if scene else []) + voice_items(list(speakers)),
                  tagged(text))
