"""Form fields from a dataclass's typed fields: the component that fits each type, its default, and the field's
help text as the component's info."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import gradio as gr

from higgs_train.studio.form_fields import component, dataclass_components, typed_value


@dataclass
class Trainer:
    max_steps: int = field(default=1000, metadata={"help": "optimizer steps"})
    lr: float = field(default=1e-4, metadata={"help": "peak learning rate"})
    packing: bool = field(default=False, metadata={"help": "conversations back to back"})
    precision: Literal["bf16", "fp16", "fp32"] = field(default="bf16", metadata={"help": "compute type"})
    peak_tflops: float | None = None
    targets: list[str] = field(default_factory=lambda: ["q_proj"])


def test_each_field_becomes_the_component_of_its_type_with_its_default_and_help():
    made = dataclass_components(Trainer)
    assert list(made) == ["max_steps", "lr", "packing", "precision", "peak_tflops", "targets"]
    assert isinstance(made["max_steps"], gr.Number) and made["max_steps"].precision == 0
    assert made["max_steps"].value == 1000 and made["max_steps"].info == "optimizer steps"
    assert isinstance(made["lr"], gr.Number) and made["lr"].precision is None
    assert made["lr"].info == "peak learning rate"
    assert isinstance(made["packing"], gr.Checkbox) and made["packing"].value is False
    assert isinstance(made["precision"], gr.Dropdown) and made["precision"].value == "bf16"
    assert [c[1] for c in made["precision"].choices] == ["bf16", "fp16", "fp32"]
    assert isinstance(made["peak_tflops"], gr.Textbox) and made["peak_tflops"].value == ""  # optional: empty = None
    assert made["peak_tflops"].info is None
    assert made["targets"].value == "['q_proj']"


def test_values_come_back_typed():
    assert typed_value(int, 20.0) == 20 and isinstance(typed_value(int, 20.0), int)
    assert typed_value(float | None, "") is None
    assert typed_value(str, "auto") == "auto"
    assert isinstance(component("x", int | None, None), gr.Textbox)
