"""Accelerate launch files shipped with the package (DDP, DeepSpeed ZeRO-2/3 with and without offload, FSDP). They are
read by `accelerate launch --config_file`, before our program starts, so they are no Hydra group;
`python -m higgs_train.launch NAME` prints the path of one, from any working directory."""

from __future__ import annotations

import os
from pathlib import Path

LAUNCH_DIR = Path(__file__).resolve().parent


def launch_files() -> dict[str, Path]:
    """Launch file name (`zero2`) -> its path."""
    return {path.stem: path for path in sorted(LAUNCH_DIR.glob("*.yaml"))}


def resolve_deepspeed_config_file() -> None:
    """The shipped launch files name their DeepSpeed JSON without a folder (`zero2.json`), so they work from any
    working directory: a name that is no file where the run starts is taken from this folder."""
    name = os.environ.get("ACCELERATE_DEEPSPEED_CONFIG_FILE")
    if name and not Path(name).is_file() and (LAUNCH_DIR / Path(name).name).is_file():
        os.environ["ACCELERATE_DEEPSPEED_CONFIG_FILE"] = str(LAUNCH_DIR / Path(name).name)
