"""The Train page's form fields come from the typed config: the component that fits each field's type, the field's
help text as its info, and a dropdown of exactly the values its check allows."""

from __future__ import annotations

import gradio as gr
import pytest

from higgs_train.config.generation import EvalConfig
from higgs_train.config.groups import OptimConfig, TrainerConfig
from higgs_train.studio.form_fields import component, field_spec, typed_value
from higgs_train.studio.page_train import GROUP_CONFIGS, TRAIN_FIELDS


def test_each_field_becomes_the_component_of_its_type_with_its_help():
    steps = field_spec(TrainerConfig, "max_steps")
    made = component("trainer.max_steps", steps, 20)
    assert isinstance(made, gr.Number) and made.precision == 0 and made.value == 20
    assert made.info == steps.help and "optimizer steps" in made.info
    lr = component("optim.lr", field_spec(OptimConfig, "lr"), 1e-4)
    assert isinstance(lr, gr.Number) and lr.precision is None
    precision = component("trainer.precision", field_spec(TrainerConfig, "precision"), "fp32")
    assert isinstance(precision, gr.Dropdown) and [c[1] for c in precision.choices] == ["bf16", "fp16", "fp32"]
    every = component("eval.every_n_steps", field_spec(EvalConfig, "every_n_steps"), "auto")
    assert isinstance(every, gr.Textbox) and every.value == "auto"


@pytest.mark.parametrize(("group", "key"), TRAIN_FIELDS)
def test_every_form_field_is_a_typed_config_field_with_help(group, key):
    assert field_spec(GROUP_CONFIGS[group], key).help


def test_values_come_back_typed():
    assert typed_value(int, 20.0) == 20 and isinstance(typed_value(int, 20.0), int)
    assert typed_value(float | None, "") is None
    assert typed_value(str, "auto") == "auto"
