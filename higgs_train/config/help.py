"""`higgs-train --help`'s list of every key: each group's fields with their type, default and one-line help, read
off the dataclasses (so the list cannot fall behind them)."""

from __future__ import annotations

from dataclasses import MISSING, fields, is_dataclass
from typing import get_type_hints

from higgs_train.config.objectives import OBJECTIVE_CONFIGS, ObjectiveConfig
from higgs_train.config.run import RunConfig


def groups() -> list[tuple[str, type]]:
    """(heading, dataclass) of every group, each objective's its own; the root's keys first."""
    hints = get_type_hints(RunConfig)
    listed = [("run", RunConfig)]
    for item in fields(RunConfig):
        kind = hints[item.name]
        if kind is ObjectiveConfig:
            listed += [(f"objective={name}", schema) for name, schema in OBJECTIVE_CONFIGS.items()]
        elif is_dataclass(kind):
            listed.append((item.name, kind))
    return listed


def own_fields(schema: type) -> list:
    """The fields a group's keys are (a group within the root is its own heading)."""
    hints = get_type_hints(schema)
    return [item for item in fields(schema) if not is_dataclass(hints[item.name]) and hints[item.name] is not
            ObjectiveConfig]


def default_of(item) -> object:
    return item.default_factory() if item.default is MISSING and item.default_factory is not MISSING else item.default


def type_name(hint) -> str:
    return getattr(hint, "__name__", None) if getattr(hint, "__args__", None) is None else \
        str(hint).replace("typing.", "")


def fields_help() -> str:
    lines = ["Settings (KEY=VALUE on the command line; `higgs-train recipe=NAME --cfg job` prints a recipe's values):"]
    for heading, schema in groups():
        prefix = "" if schema is RunConfig else ("objective." if heading.startswith("objective=") else f"{heading}.")
        lines.append(f"\n{heading}:" if schema is not RunConfig else "\n(root):")
        hints = get_type_hints(schema)
        for item in own_fields(schema):
            value = default_of(item)
            lines.append(f"  {prefix}{item.name}: {type_name(hints[item.name])} = {_yaml(value)}")
            lines.append(f"      {item.metadata['help']}")
    return "\n".join(lines)


def _yaml(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)
