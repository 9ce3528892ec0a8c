"""Built-in stand-ins (`builtin:tiny`, `builtin:demo`): made on first use in a cache folder, trusted only when
complete."""

from __future__ import annotations

import shutil
from pathlib import Path

from higgs_train.runtime.cache import cache_root
from higgs_train.runtime.logs import logger

BUILTIN_PREFIX = "builtin:"
COMPLETE_MARKER = ".complete"
# Bump a version when what it builds changes, so an old cache is never reused.
BUILDERS = {"tiny": "tiny-checkpoint-v1", "demo": "demo-data-v2"}


def _build(name: str, folder: Path) -> None:
    if name == "tiny":
        from higgs_train.builtins.random_checkpoint import write_random_checkpoint

        write_random_checkpoint(folder, "tiny")
    else:
        from higgs_train.builtins.demo_data import write_demo_dataset

        write_demo_dataset(folder)


def ensure_builtin(name: str) -> Path:
    """The folder of built-in asset `name`, built now if missing or left incomplete by an interrupted build."""
    if name not in BUILDERS:
        known = [BUILTIN_PREFIX + n for n in BUILDERS]
        raise ValueError(f"{BUILTIN_PREFIX}{name} is not a built-in; use one of {known}")
    folder = cache_root() / BUILDERS[name]
    if (folder / COMPLETE_MARKER).exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    logger.info(f"building {BUILTIN_PREFIX}{name} in {folder} (first use only)")
    # Built in place (the checkpoint records its own absolute path); the marker comes last, after every file.
    _build(name, folder)
    (folder / COMPLETE_MARKER).write_text("ok\n")
    return folder


# What a bare `builtin:NAME` stands for where a tool reads it: the demo is its conversation file.
DEFAULT_FILE = {"demo": "train.jsonl"}
# Names for a file inside a built-in: the demo's test list for higgs-eval.
ALIASES = {"demo-eval": "demo/eval.lst", "demo-pairs": "demo/pairs.jsonl"}


def resolve(value: str) -> str:
    """`builtin:NAME[/sub/path]` -> a real path (`builtin:demo` is the demo's train.jsonl, `builtin:demo-eval` its
    test list, `builtin:demo-pairs` its preference pairs, `builtin:tiny` the checkpoint folder); anything else is
    returned unchanged. Every tool takes this one spelling."""
    if not value.startswith(BUILTIN_PREFIX):
        return value
    name = value[len(BUILTIN_PREFIX):]
    name, _, rest = ALIASES.get(name, name).partition("/")
    folder = ensure_builtin(name)
    rest = rest or DEFAULT_FILE.get(name, "")
    return str(folder / rest) if rest else str(folder)
