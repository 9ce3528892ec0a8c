"""Where a training table lives and when it is outdated: beside the code cache (data on a read-only mount: in the
user's cache), under a key that hashes what decides its contents (the data files as they are now, the row checks'
settings, the code-cache shards it read), so a change to any of them makes a new table and retires the old one."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from higgs_train.data.code_cache import CodeCache, clip_identity
from higgs_train.data.conversations import dataset_root
from higgs_train.data.overrides import FILE_NAME as OVERRIDES_FILE
from higgs_train.data.table import FORMAT, data_files
from higgs_train.runtime import atomic
from higgs_train.runtime.cache import cache_root
from higgs_train.runtime.logs import logger


def files_identity(data_path: Path) -> list:
    """(name, size, modification time) of the data files, speakers.json and overrides.jsonl: what tells the data has
    changed."""
    files = data_files(data_path)
    for extra in (dataset_root(data_path) / "speakers.json", dataset_root(data_path) / OVERRIDES_FILE):
        if extra.is_file() and extra not in files:
            files.append(extra)
    return [[f.name, *clip_identity(f)] for f in files]


def table_key(data_path: Path, data_cfg, cache: CodeCache) -> str:
    parts = {"format": FORMAT, "files": files_identity(data_path), "shards": [s.name for s in cache.shards()],
             "checks": [data_cfg.min_seconds, data_cfg.max_seconds, data_cfg.on_bad_row, data_cfg.max_examples]}
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def remove_outdated_tables(folder: Path, info: dict) -> None:
    """Tables of the same source built from its files as they were before: no run can use them again."""
    for other in folder.parent.glob("table-*"):
        try:
            previous = json.loads((other / "table.json").read_text())
        except (OSError, ValueError):
            continue
        if other != folder and previous.get("source") == info["source"] and previous.get("files") != info["files"]:
            atomic.remove(other)


def _writable(folder: Path) -> bool:
    """Whether files can be made in `folder` (or in its nearest existing parent, where it does not exist yet)."""
    while not folder.exists():
        folder = folder.parent
    return os.access(folder, os.W_OK)


def table_folder(cache: CodeCache, key: str) -> Path:
    """Beside the code cache; for data on a read-only mount, in the user's cache (`HIGGS_TRAIN_CACHE`), under a
    folder named after the data's place and the tokenizer."""
    if _writable(cache.folder):
        return cache.folder / f"table-{key}"
    place = hashlib.sha256(f"{cache.root}\0{cache.folder.name}".encode()).hexdigest()[:16]
    folder = cache_root() / "tables" / place / f"table-{key}"
    logger.info(f"{cache.root} is read-only: the training table lives in {folder}")
    return folder
