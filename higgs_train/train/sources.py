"""The run's inputs made real once, at its start: the checkpoint folder and the training data (`builtin:` names
resolved, built-ins made), handed on to whoever reads them."""

from __future__ import annotations

from pathlib import Path

from higgs_train.builtins import assets
from higgs_train.config import RunConfig
from higgs_train.data.source import DataPlan, DataSource


def resolve_sources(run: RunConfig) -> tuple[str, DataPlan]:
    """(the checkpoint folder `model.name_or_path` names, the plan of the training data): `data.path`'s
    conversations, or `data.pairs`' pairs for an objective that trains on pairs."""
    model_path = assets.resolve(run.model.name_or_path)
    given, kind = (run.data.path, "conversations") if run.objective.reads_data_path else (run.data.pairs, "pairs")
    source = DataSource(given, Path(assets.resolve(given)), kind)
    return model_path, DataPlan(source, run.data, run.task.name, run.trainer, run.eval.val_size, run.seed)
