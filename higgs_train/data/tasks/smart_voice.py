"""smart_voice: system + scene + the user's text -> the assistant's clip, rows used as they are. A speaker described
in speakers.json gets its description as a `SPEAKER0: ...` scene line, so each voice is learnt under its own."""

from __future__ import annotations

from higgs_train.data.tasks.layout import head, layout, system_message, text_item, voice_items, with_messages

NEEDS_REFERENCE = False


def conversation(row: dict, reference: dict | None, description: str | None) -> dict:
    if not description:
        return row
    system, scene = head(row["messages"])
    rest = row["messages"][2 if scene else 1:]
    return with_messages(row, [system, {"role": "scene", "content": scene + voice_items([description])}, *rest])


def prompt(text: str, scene: str | None = None, speakers: list[str] = (), references: list[dict] = (),
           reference_text: str | None = None) -> list[dict]:
    return layout(system_message(), ([text_item(scene)] if scene else []) + voice_items(list(speakers)), text)
