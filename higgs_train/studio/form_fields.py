"""Form fields from typed settings: a dataclass's fields (their type, default and `metadata["help"]`), or keys of a
composed config (the type read from the value), each as the gradio component that fits it, with its help as the
component's `info`. The Train page's settings come from here, so a new field needs no new form code."""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from typing import Any, Literal, get_args, get_origin


def _plain_type(annotation: Any) -> tuple[Any, bool]:
    """(the type without Optional, whether None is allowed)."""
    if isinstance(annotation, str):
        raise TypeError(f"annotation {annotation!r} is a string; resolve it with typing.get_type_hints first")
    if get_origin(annotation) in (typing.Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        return (members[0] if len(members) == 1 else str), len(members) < len(get_args(annotation))
    return annotation, False


def component(label: str, annotation: Any, default: Any, help_text: str | None = None):
    """The gradio input for one setting: a checkbox, a number (integer steps for int), a dropdown of the allowed
    values (Literal or Enum) or a text box (anything else, and an optional value, where empty means None)."""
    import gradio as gr

    kind, optional = _plain_type(annotation)
    if get_origin(kind) is Literal:
        choices = list(get_args(kind))
        return gr.Dropdown(choices=choices, value=default, label=label, info=help_text)
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return gr.Dropdown(choices=[m.value for m in kind], value=getattr(default, "value", default), label=label,
                           info=help_text)
    if kind is bool:
        return gr.Checkbox(value=bool(default), label=label, info=help_text)
    if kind in (int, float) and not optional:
        return gr.Number(value=default, label=label, info=help_text, precision=0 if kind is int else None)
    return gr.Textbox(value="" if default is None else str(default), label=label, info=help_text,
                      placeholder="empty: none" if optional else None)


def dataclass_components(cls: type) -> dict[str, Any]:
    """One component per field of a dataclass, in field order, its help from `field.metadata["help"]`."""
    hints = typing.get_type_hints(cls)
    made = {}
    for field in dataclasses.fields(cls):
        if field.default is not dataclasses.MISSING:
            default = field.default
        elif field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        else:
            default = None
        made[field.name] = component(field.name, hints[field.name], default, field.metadata.get("help"))
    return made


def value_type(value: Any) -> Any:
    """The type a composed config's value stands for (a null default: optional text)."""
    return str | None if value is None else type(value)


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
