"""Metrics sinks: `metrics.jsonl` in the run directory, one JSON object per logged step (always on)."""

from __future__ import annotations

import json
from pathlib import Path


class JsonlMetrics:
    def __init__(self, path: Path):
        self.path = path
        self.handle = open(path, "a", buffering=1)

    def log(self, record: dict) -> None:
        self.handle.write(json.dumps(record) + "\n")

    def close(self) -> None:
        self.handle.close()
