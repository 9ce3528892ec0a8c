"""voice_clone: another clip of the same speaker and its transcript as an earlier user/assistant pair (context
only, never a target), then the new text -> the target clip."""

from __future__ import annotations

from higgs_train.data.tasks.layout import (
    head,
    last_user_text,
    layout,
    reference_turns,
    spoken_clip,
    system_message,
    text_item,
    with_messages,
)

NEEDS_REFERENCE = True


def conversation(row: dict, reference: dict | None, description: str | None) -> dict:
    system, scene = head(row["messages"])
    context = reference_turns(last_user_text(reference["messages"]), spoken_clip(reference["messages"]))
    return with_messages(row, layout(system, scene, last_user_text(row["messages"]), context,
                                     spoken_clip(row["messages"])))


def prompt(text: str, scene: str | None = None, speakers: list[str] = (), references: list[dict] = (),
           reference_text: str | None = None) -> list[dict]:
    [reference] = references
    return layout(system_message(), [text_item(scene)] if scene else [], text,
                  reference_turns(reference_text, reference))
