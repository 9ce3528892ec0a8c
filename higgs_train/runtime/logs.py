"""One logger, `higgs_train`, for every tool and module. Lines read `higgs-train: message` and
`higgs-train: warning: message` on the console; under `higgs-train` Hydra's job logging (configs/config.yaml) also
writes them, timestamped, to the run directory's `train.log`. Under a multi-process launch only the main process
speaks, so every line appears once. The libraries' own warnings, deprecation notices and loading bars are hidden
unless the user asks for them (`verbose=true`, or HIGGS_TRAIN_VERBOSE=1 for every tool)."""

from __future__ import annotations

import logging
import os
import sys
import warnings

logger = logging.getLogger("higgs_train")
NOTICE = 25  # between info and warning: something optional was left out, nothing is wrong with the run
logging.addLevelName(NOTICE, "NOTICE")


class ToolFormatter(logging.Formatter):
    """`TOOL: message`, with the level named for warnings and errors."""

    def __init__(self, tool: str = "higgs-train"):
        super().__init__()
        self.tool = tool

    def format(self, record: logging.LogRecord) -> str:
        level = "" if record.levelno < NOTICE else f"{record.levelname.lower()}: "
        return f"{self.tool}: {level}{record.getMessage()}"


class BelowError(logging.Filter):
    """For the stdout handler: errors go to stderr alone."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.ERROR


def is_main_process() -> bool:
    """Rank 0 of a launch (`accelerate launch`, torchrun and DeepSpeed set RANK), or a single process."""
    return int(os.environ.get("RANK", "0")) == 0


def quiet_other_ranks() -> None:
    """Processes other than the main one log errors only."""
    if not is_main_process():
        logger.setLevel(logging.ERROR)


def log_to_console(tool: str) -> None:
    """For the tools that do not run under Hydra: our lines on stdout, errors on stderr, as `tool: ...`."""
    stdout, stderr = logging.StreamHandler(sys.stdout), logging.StreamHandler(sys.stderr)
    stdout.addFilter(BelowError())
    stderr.setLevel(logging.ERROR)
    for handler in (stdout, stderr):
        handler.setFormatter(ToolFormatter(tool))
    logger.handlers = [stdout, stderr]
    logger.setLevel(logging.INFO)
    quiet_other_ranks()
    quiet_libraries()


def quiet_libraries(verbose: bool = False) -> None:
    """Our lines and progress bars only: library warnings (Python's and their loggers'), deprecation notices and the
    weight-loading bars are hidden, errors still show. Call it before the libraries are imported (their switches
    are read at import)."""
    if verbose or os.environ.get("HIGGS_TRAIN_VERBOSE") == "1":
        return
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # Transformers' and datasets' loading bars
    warnings.filterwarnings("ignore")
    warnings.filterwarnings("default", module=r"(higgs_train|data_prep)(\.|$)")
    logging.getLogger().setLevel(logging.ERROR)  # library loggers without a level of their own
    if "transformers" in sys.modules:  # imported already (the small tools import it at start): its own switches
        from transformers.utils import logging as transformers_logging

        transformers_logging.set_verbosity_error()
        transformers_logging.disable_progress_bar()
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    import torch

    if not torch.cuda.is_available():  # DeepSpeed's "Setting accelerator to CPU" warning is its auto-detection's
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
