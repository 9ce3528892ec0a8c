"""Form fields from the typed config: a config dataclass's field (its type, its help and, where its check allows
a fixed set, those values) as the gradio component that fits it, with its help as the component's `info`. The Train
page's settings come from here, so a field added to a config group needs no new form code."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, NamedTuple, get_args, get_origin


class FieldSpec(NamedTuple):
    annotation: Any
    help: str | None
    choices: tuple | None  # the values a `one_of` check allows


def field_spec(group: type, name: str) -> FieldSpec:
    """What the config dataclass `group` says of its field `name`."""
    item = next(f for f in dataclasses.fields(group) if f.name == name)
    check = item.metadata.get("check")
    return FieldSpec(typing.get_type_hints(group)[name], item.metadata.get("help"), getattr(check, "allowed", None))


def _plain_type(annotation: Any) -> tuple[Any, bool]:
    """(the type without Optional, whether None is allowed)."""
    if get_origin(annotation) in (typing.Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        return (members[0] if len(members) == 1 else str), len(members) < len(get_args(annotation))
    return annotation, False


def component(label: str, spec: FieldSpec, value: Any):
    """The gradio input for one setting holding `value`: a dropdown of the allowed values, a checkbox, a number
    (integer steps for int) or a text box (anything else, and an optional value, where empty means None)."""
    import gradio as gr

    kind, optional = _plain_type(spec.annotation)
    if spec.choices:
        return gr.Dropdown(choices=list(spec.choices), value=value, label=label, info=spec.help)
    if kind is bool:
        return gr.Checkbox(value=bool(value), label=label, info=spec.help)
    if kind in (int, float) and not optional:
        return gr.Number(value=value, label=label, info=spec.help, precision=0 if kind is int else None)
    return gr.Textbox(value="" if value is None else str(value), label=label, info=spec.help,
                      placeholder="empty: none" if optional else None)


def typed_value(annotation: Any, raw: Any) -> Any:
    """A component's value back as the setting's type: integer numbers as int, empty text of an optional as None."""
    kind, optional = _plain_type(annotation)
    if raw in ("", None):
        return None
    if kind is int:
        return int(raw)
    if kind is float:
        return float(raw)
    return raw
