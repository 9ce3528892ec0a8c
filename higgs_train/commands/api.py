"""The Python API for notebooks: the same configs and checks as the commands, results as Python objects.

    from higgs_train import finetune, speak
    summary = finetune("smoke", {"trainer.max_steps": 10}, run_dir="runs/try")
    clips = speak("builtin:tiny", "Hello there.", adapter="runs/try/adapter")
    clips[0]["audio"], clips[0]["sampling_rate"]          # a float32 array at 24 kHz
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import tempfile
from pathlib import Path


def _override(key: str, value) -> str:
    from higgs_train.commands.train import _hydra_value

    if value is None:
        return f"{key}=null"
    if isinstance(value, bool):
        return f"{key}={str(value).lower()}"
    if isinstance(value, (list, tuple)):
        return f"{key}=[{','.join(_hydra_value(str(v)) for v in value)}]"
    return f"{key}={value if isinstance(value, (int, float)) else _hydra_value(str(value))}"


def _console() -> None:
    from higgs_train.runtime.logs import log_to_console, logger

    if not any(isinstance(h, logging.StreamHandler) for h in logger.handlers):
        log_to_console("higgs-train")


def finetune(recipe: str | None = "smoke", overrides: dict | list[str] | None = None,
             run_dir: str | Path | None = None, config_dir: str | Path | None = None) -> dict:
    """Trains as `higgs-train recipe=RECIPE key=value ...` does; `overrides` as a dict ({"optim.lr": 1e-4}) or the
    command line's strings; the run goes to `run_dir` (default outputs/DATE/TIME). Returns the run summary."""
    from higgs_train.config import run_config
    from higgs_train.config.files import compose_config
    from higgs_train.train.recipe import train

    given = list(overrides) if isinstance(overrides, (list, tuple)) else \
        [_override(k, v) for k, v in (overrides or {}).items()]
    if config_dir:
        given.append(f"hydra.searchpath=[file://{Path(config_dir).resolve()}]")
    run = run_config(compose_config(([f"recipe={recipe}"] if recipe else []) + given))
    _console()
    if not run.verbose:  # bitsandbytes' CPU-kernel notice, hidden as the command line hides it
        logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    run_dir = Path(run_dir) if run_dir else Path("outputs") / datetime.datetime.now().strftime("%Y-%m-%d/%H-%M-%S")
    with _train_log(run_dir):
        return train(run, run_dir)


@contextlib.contextmanager
def _train_log(run_dir: Path):
    """`train.log` in the run directory, as higgs-train writes it (every line of ours, timestamped)."""
    from higgs_train.runtime.logs import logger

    handler = logging.FileHandler(run_dir / "train.log", delay=True)  # opened at the first line, once the run
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(levelname)s] %(message)s"))  # has claimed the folder
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        handler.close()


def speak(model: str, text: str | None = None, adapter: str | None = None, prompts: str | None = None,
             out_dir: str | Path | None = None, **settings) -> list[dict]:
    """Speaks as `higgs-generate` does (`settings`: scene, speakers as a list of descriptions, reference_audio,
    reference_text, max_new_tokens, do_sample, ...). Returns one record per clip with its `audio` (float32 at
    24 kHz), `sampling_rate`, `path` and measurements."""
    from higgs_train.commands.generate import _defaults, synthesize
    from higgs_train.data.audio import TARGET_SAMPLE_RATE
    from higgs_train.runtime.key_value_args import ArgumentError

    args = _defaults()
    unknown = sorted(set(settings) - set(args))
    if unknown:
        raise ArgumentError(f"unknown setting(s) {unknown}; use {sorted(args)}")
    out_dir = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix="higgs-generate-"))
    args.update(settings, model=model, adapter=adapter, text=text, list=prompts, out=str(out_dir), id="sample")
    if not text and not prompts:
        raise ArgumentError("give text=\"...\" or prompts=FILE.jsonl")
    records, waveforms = synthesize(args)
    return [{**record, "audio": waveform, "sampling_rate": TARGET_SAMPLE_RATE}
            for record, waveform in zip(records, waveforms)]
