"""The dataclasses in Hydra's ConfigStore: `run_schema` under configs/config.yaml, and one schema per objective under
its configs/objective/NAME.yaml; and a wrong type, which OmegaConf refuses while composing, said as the field's own
check says it."""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from typing import get_type_hints

from higgs_train.config.checks import ConfigError, shown
from higgs_train.config.objectives import OBJECTIVE_CONFIGS
from higgs_train.config.run import RunConfig


def register_schemas() -> None:
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.store(name="run_schema", node=RunConfig, provider="higgs-train")
    for name, schema in OBJECTIVE_CONFIGS.items():
        store.store(group="objective", name=f"{name}_schema", node=schema, provider="higgs-train")


def type_error_line(error: Exception) -> str | None:
    """One line for OmegaConf's refusal of a value of the wrong type (`optim.lr=abc`), made by the field's check
    where it has one; None for any other error."""
    from omegaconf.errors import ValidationError

    while error is not None and not isinstance(error, ValidationError):
        error = error.__cause__
    if error is None or not error.full_key:
        return None
    found = _field(error.full_key)
    check = found.metadata.get("check") if found else None
    if check is not None:
        try:
            check(error.full_key, error.value)
        except ConfigError as refused:
            return str(refused)
    wanted = getattr(found.type, "__name__", str(found.type)) if found else "another type"
    return f"{error.full_key}={shown(error.value)} must be a {wanted}"


def _field(full_key: str):
    """The dataclass field a dotted key names (the objective's among every objective's), its type resolved."""
    schemas, found = [RunConfig], None
    for part in full_key.split("."):
        found = next((f for schema in schemas for f in fields(schema) if f.name == part), None)
        if found is None:
            return None
        found.type = next(get_type_hints(s)[part] for s in schemas if part in get_type_hints(s))
        schemas = list(OBJECTIVE_CONFIGS.values()) if part == "objective" else \
            [found.type] if is_dataclass(found.type) else []
    return found
