"""Every config key is described where it is declared: its dataclass field has a type, a default and a one-line help,
and `higgs-train --help` lists them; the batch size says what it counts for each objective."""

import subprocess
import sys
from dataclasses import MISSING, fields
from typing import get_type_hints

import pytest

from higgs_train.config.generation import GenerationConfig
from higgs_train.config.help import fields_help, groups, own_fields
from higgs_train.config.objectives import OBJECTIVE_CONFIGS

SCHEMAS = sorted({schema for _, schema in groups()} | {GenerationConfig}, key=lambda s: s.__name__)


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda s: s.__name__)
def test_every_field_has_a_type_a_default_and_a_help_line(schema):
    hints = get_type_hints(schema)  # every annotation resolves to a type
    for item in own_fields(schema):
        assert hints[item.name] is not None, f"{schema.__name__}.{item.name} has no type"
        assert item.default is not MISSING or item.default_factory is not MISSING, \
            f"{schema.__name__}.{item.name} has no default"
        help_line = item.metadata.get("help", "")
        assert help_line.strip() and "\n" not in help_line, f"{schema.__name__}.{item.name} has no one-line help"


def test_the_groups_walked_are_every_group_and_every_objective():
    headings = [heading for heading, _ in groups()]
    assert headings[:1] == ["run"] and {f"objective={name}" for name in OBJECTIVE_CONFIGS} <= set(headings)
    assert {"model", "data", "task", "peft", "freeze", "optim", "trainer", "eval", "logger"} <= set(headings)
    assert {f.name for f in fields(GenerationConfig)} <= {f.name for _, s in groups() if s.__name__ == "EvalConfig"
                                                          for f in fields(s)}


def test_the_batch_size_says_what_it_counts_for_each_objective():
    says = {name: schema().batch_unit(2) for name, schema in OBJECTIVE_CONFIGS.items()}
    assert says == {"sft": "2 rows", "dpo": "2 pairs", "grpo": "2 prompts x 8 samples each"}
    said = "trainer.batch_size: int = 2\n      per micro-batch when max_tokens_per_batch is null: rows (objective=sft)"
    assert said in fields_help()


@pytest.mark.slow  # a subprocess
def test_help_lists_each_key_with_its_type_default_and_help():
    result = subprocess.run([sys.executable, "-m", "higgs_train.commands.train", "--help"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and "== Configuration groups ==" in result.stdout
    assert "  optim.lr: float = 0.0001\n      the peak learning rate" in result.stdout
    assert "  objective.samples_per_prompt: int = 8\n      answers sampled per prompt" in result.stdout
