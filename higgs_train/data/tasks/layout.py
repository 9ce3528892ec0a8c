"""The conversation layout every task is made of, defined once: the system prompt, the basic text-to-speech row,
speaker lines in the scene, and where a conversation's transcript and target clip are.

A conversation is system (+ scene) + context turns (a voice-clone reference: its transcript and clip) + the user's
text (+ the assistant's target clip). Training builds it with the target; inference builds the same without it, so
the prompt a model is asked is, token for token, the prefix of the conversations it was trained on.
"""

from __future__ import annotations

import re

SYSTEM_PROMPT = "Generate audio following instruction."
SPEAKER_TAG = re.compile(r"\[SPEAKER\d+\]")


def text_item(text: str) -> dict:
    return {"type": "text", "text": text}


def basic_messages(text: str, audio: dict, scene: str | None = None) -> list[dict]:
    """The basic text-to-speech row every dataset is converted to: system (+ scene) + transcript -> its clip."""
    messages = [{"role": "system", "content": [text_item(SYSTEM_PROMPT)]}]
    if scene:
        messages.append({"role": "scene", "content": [text_item(scene)]})
    return messages + [{"role": "user", "content": [text_item(text)]},
                       {"role": "assistant", "content": [{"type": "audio", **audio}]}]


def texts_of(message: dict) -> str:
    texts = (i.get("text", "").strip() for i in message["content"] if i.get("type") == "text")
    return " ".join(t for t in texts if t)


def last_user_text(messages: list[dict]) -> str:
    """The transcript a conversation's target speaks: its last user turn's text ("" when it has none)."""
    users = [m for m in messages if m.get("role") == "user"]
    return texts_of(users[-1]) if users else ""


def target_audio(messages: list[dict]) -> dict | None:
    """The audio item a conversation ends with (its target), None for a prompt."""
    last = messages[-1]
    return last["content"][-1] if last["role"] == "assistant" else None


def spoken_clip(messages: list[dict]) -> dict:
    """The clip a row speaks: its last assistant turn's last audio item."""
    return [m for m in messages if m["role"] == "assistant"][-1]["content"][-1]


def tagged(text: str) -> str:
    """Multi-speaker text: `[SPEAKER0] text` unless it names its speakers already."""
    return text if SPEAKER_TAG.search(text) else f"[SPEAKER0] {text}"


def head(messages: list[dict]) -> tuple[dict, list[dict]]:
    """The system message and the scene items (empty when there is no scene)."""
    scene = messages[1]["content"] if len(messages) > 1 and messages[1]["role"] == "scene" else []
    return messages[0], list(scene)


def voice_items(voices: list) -> list[dict]:
    """Scene lines naming each speaker's voice, as the model's prompts do: `SPEAKERi: description`, or `SPEAKERi:`
    followed by a reference clip (an audio item)."""
    items = []
    for index, voice in enumerate(voices):
        if isinstance(voice, dict):
            items += [text_item(f"SPEAKER{index}:"), voice]
        else:
            items.append(text_item(f"SPEAKER{index}: {voice}".strip()))
    return items


def reference_turns(text: str, audio: dict) -> list[dict]:
    """A voice-clone reference as context: its transcript as a user turn, its clip as an unsupervised answer."""
    return [{"role": "user", "content": [text_item(text)]},
            {"role": "assistant", "content": [audio], "supervised": False}]


def layout(system: dict, scene: list[dict], text: str, context: list[dict] = (), target: dict | None = None) -> list:
    """system (+ scene) + context turns + the user's text (+ the supervised target clip)."""
    messages = [system] + ([{"role": "scene", "content": scene}] if scene else []) + list(context)
    messages.append({"role": "user", "content": [text_item(text)]})
    if target is not None:
        messages.append({"role": "assistant", "content": [target], "supervised": True})
    return messages


def system_message() -> dict:
    return {"role": "system", "content": [text_item(SYSTEM_PROMPT)]}


def with_messages(row: dict, messages: list[dict]) -> dict:
    """The row's fields (id, speaker, ...) with these messages."""
    return {**{k: v for k, v in row.items() if k != "messages"}, "messages": messages}
