"""Where a run's training data is and what it is built with, resolved once at the run's start and handed to whoever
reads it (the objective's data, the resume record), so no one resolves `builtin:` again or packs a path back into a
config."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DataSource:
    """`given` as the config names it (data.path or data.pairs; messages and the resume record say it so), `path`
    the file or folder it is (a built-in made first), `kind` what it holds: "conversations" or "pairs"."""

    given: str
    path: Path
    kind: str


@dataclass(frozen=True)
class DataPlan:
    """What the training data is built from: the source, the `data` group's row checks, the task, the `trainer`
    group's batching, the validation share and the seed of the split and the batch order."""

    source: DataSource
    data: object  # DataConfig
    task: str
    trainer: object  # TrainerConfig
    val_size: int
    seed: int
