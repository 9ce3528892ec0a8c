"""Where higgs-train keeps what it makes for itself (the built-ins, tables of read-only data, precomputed references):
`$HIGGS_TRAIN_CACHE`, else `~/.cache/higgs-train`."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    return Path(os.environ.get("HIGGS_TRAIN_CACHE", Path.home() / ".cache" / "higgs-train"))
