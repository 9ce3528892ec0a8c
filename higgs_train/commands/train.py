"""`higgs-train recipe=NAME key=value ...`: compose the config with Hydra, check it, then run the job.

The config groups live in `configs/` and the recipes in `recipes/` (inside the package in a wheel, so an installed
one finds them from any folder); `--config-dir DIR` adds a folder of the user's own (`DIR/recipe/NAME.yaml`). Only Hydra
and the config checks are imported before the job starts, so `--help` and config mistakes answer at once.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from higgs_train.config import ConfigError, run_config
from higgs_train.config.files import CONFIG_DIR, compose_config, register_configs
from higgs_train.runtime.errors import TrainingError, UserError, environment_fault
from higgs_train.runtime.key_value_args import hide_bitsandbytes
from higgs_train.runtime.logs import is_main_process, logger, quiet_libraries
from higgs_train.runtime.renamed import renamed_spelling
from higgs_train.runtime.run_lock import hold_run_dir

USER_CONFIG_FLAGS = ("--config-dir", "-cd")


@hydra.main(config_path=str(CONFIG_DIR), config_name="config", version_base=None)
def _run(cfg: DictConfig) -> None:
    try:
        run = run_config(cfg)
        quiet_libraries(run.verbose)
        run_dir = Path(HydraConfig.get().runtime.output_dir)
        if run.dry_run:
            from higgs_train.commands.dry_run import dry_run

            dry_run(run, run_dir)
            return
        from higgs_train.train.recipe import Preempted, train

        try:
            train(run, run_dir)
        except Preempted as stopped:
            logger.error(f"{stopped}; continue with: {resume_command(sys.argv)}")
            sys.exit(1)
    except UserError as error:
        logger.error(error)
        sys.exit(2)
    except TrainingError as error:
        logger.error(error)
        sys.exit(1)
    except KeyboardInterrupt:
        logger.error("interrupted (Ctrl-C twice, or before training started); every complete checkpoint is intact: "
                     f"continue with: {resume_command(sys.argv)}")
        sys.exit(1)
    except OSError as error:
        line = environment_fault(error, "free space there, or write the run elsewhere (out=...)")
        if line is None:
            raise
        logger.error(line)
        sys.exit(1)


def resume_command(argv: list[str]) -> str:
    """The command that continues this run: the same overrides in the same run directory, with resume=auto."""
    kept = [a for a in argv[1:] if not a.startswith(("resume=", "hydra.output_subdir=", "overwrite="))]
    run_dirs = [a.split("=", 1)[1] for a in kept if a.startswith(("out=", "hydra.run.dir="))]
    kept = [a for a in kept if not a.startswith(("out=", "hydra.run.dir="))] + [f"out={d}" for d in run_dirs[-1:]]
    return " ".join(["higgs-train", *kept, "resume=auto"])


def user_config_dir(argv: list[str]) -> str | None:
    """The folder given with Hydra's `--config-dir DIR` (or `-cd DIR`, `--config-dir=DIR`), if any."""
    for index, argument in enumerate(argv):
        if argument in USER_CONFIG_FLAGS and index + 1 < len(argv):
            return argv[index + 1]
        if argument.startswith("--config-dir="):
            return argument.partition("=")[2]
    return None


def composition_error(overrides: list[str], config_dir: str | None = None) -> str | None:
    """Hydra's multi-line complaint about a mistyped key or unknown recipe, as one line; None when it composes."""
    from hydra.errors import HydraException, MissingConfigException
    from omegaconf.errors import OmegaConfBaseException

    try:
        _compose(overrides, config_dir)
    except ConfigError as error:
        return str(error)
    except MissingConfigException as error:
        group = next((o.split("=")[0] for o in overrides if error.missing_cfg_file and
                      o.startswith(error.missing_cfg_file.split("/")[0] + "=")), None)
        choices = ", ".join(sorted(error.options or []))
        return f"{str(error).splitlines()[0].strip()}; available {group or 'options'}: {choices}"
    except (HydraException, OmegaConfBaseException) as error:
        first = str(error).strip().splitlines()[0].rstrip(".")
        if first.startswith("Could not override"):
            hint = _closest_key(first.split("'")[1], overrides, config_dir)
            return f"{first}: no such key{hint}; `higgs-train --cfg job` prints every key"
        return first
    return None


def _closest_key(mistyped: str, overrides: list[str], config_dir: str | None) -> str:
    """", did you mean KEY?" for the config's nearest key (never `+KEY`, which would add a key nothing reads)."""
    import difflib

    from omegaconf import OmegaConf

    others = [o for o in overrides if o.split("=")[0].lstrip("+~") != mistyped]
    try:
        keys = _flat_keys(OmegaConf.to_container(_compose(others, config_dir)))
    except Exception:  # the other overrides do not compose either: no suggestion, the error stands
        return ""
    close = difflib.get_close_matches(mistyped, keys, n=1, cutoff=0.6)
    return f", did you mean {close[0]}?" if close else ""


def _flat_keys(node: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in node.items():
        keys += _flat_keys(value, f"{prefix}{key}.") if isinstance(value, dict) else [f"{prefix}{key}"]
    return keys


def _compose(overrides: list[str], config_dir: str | None, with_hydra: bool = False):
    if not with_hydra:
        overrides = [o for o in overrides if not o.startswith("hydra")]
    if config_dir:
        overrides = [*overrides, f"hydra.searchpath=[file://{Path(config_dir).resolve()}]"]
    return compose_config(overrides, return_hydra_config=with_hydra)


def _pinned_run_dir(overrides: list[str], config_dir: str | None) -> str | None:
    """The run directory Hydra will use, resolved once (its `${now:...}` would differ a second later), or None when
    it cannot be resolved outside a run (the recipe then takes the lock itself, after Hydra starts)."""
    from omegaconf.errors import OmegaConfBaseException

    try:
        return str(_compose(overrides, config_dir, with_hydra=True).hydra.run.dir)
    except (OmegaConfBaseException, ValueError):
        return None


def _hydra_value(text: str) -> str:
    """`text` as one Hydra override value (quoted where the override grammar would read it otherwise)."""
    if not any(c in text for c in "'\",[]{}()=$ *?"):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _quiet_hydra_on_other_ranks() -> None:
    """Under `accelerate launch`/torchrun only rank 0 writes Hydra's run directory; the others write nothing (their
    `${now}` may differ) and receive rank 0's directory once the process group is up."""
    if not is_main_process():
        sys.argv = [a for a in sys.argv if not a.startswith("hydra.run.dir=")] + [
            "hydra.run.dir=.", "hydra.output_subdir=null", "hydra/job_logging=disabled",
            "hydra/hydra_logging=disabled"]


def _checkable(argv: list[str]) -> list[str] | None:
    """The overrides to check before Hydra runs, or None when a Hydra flag other than --config-dir asks for
    something else (--help, --cfg job, ...)."""
    config_dir = user_config_dir(argv)
    rest = [a for a in argv if a not in USER_CONFIG_FLAGS and a != config_dir and not a.startswith("--config-dir=")]
    return None if any(a.startswith("-") for a in rest) else rest


def main() -> None:
    _quiet_hydra_on_other_ranks()
    register_configs()
    overrides = _checkable(sys.argv[1:])
    config_dir = user_config_dir(sys.argv[1:])
    if overrides is None:  # --help, --cfg job, ...
        try:
            _run()
        finally:  # Hydra's help ends the process; every key's type, default and help follow it
            if any(a in ("--help", "-h") for a in sys.argv[1:]):
                from higgs_train.config.help import fields_help

                print(f"\n{fields_help()}")
        return
    error = renamed_spelling("higgs-train", overrides) or composition_error(overrides, config_dir)
    if error:
        print(f"higgs-train: error: {error}", file=sys.stderr)
        sys.exit(2)
    composed = _compose(overrides, config_dir)
    if composed.model.quantization == "none" and composed.optim.name == "adamw":
        hide_bitsandbytes()
    if composed.dry_run:  # it checks the run without touching the run's directory; Hydra's log goes to a scratch one
        with tempfile.TemporaryDirectory(prefix="higgs-train-dry-run-") as scratch:
            sys.argv += [f"hydra.run.dir={_hydra_value(scratch)}", "hydra.output_subdir=null"]
            _run()
        return
    run_dir = _pinned_run_dir(overrides, config_dir) if is_main_process() else None
    if run_dir is None:
        _run()
        return
    # One run per directory, locked before Hydra writes into it; the run writes its own `.hydra/config.yaml` once
    # it has accepted the directory, so a refused run never rewrites another run's record.
    sys.argv += [f"out={_hydra_value(run_dir)}", f"hydra.run.dir={_hydra_value(run_dir)}", "hydra.output_subdir=null"]
    # A failed start removes the dated outputs/DATE/TIME folder it made; a run directory the user named keeps the
    # train.log that records why (a cluster job's stderr is easily lost).
    dated = not any(o.startswith(("out=", "hydra.run.dir=")) for o in overrides)
    made = [folder for folder in (Path(run_dir), *Path(run_dir).parents) if dated and not folder.exists()]
    try:
        with hold_run_dir(run_dir):
            _run()
    except UserError as error:
        print(f"higgs-train: error: {error}", file=sys.stderr)
        _remove_failed_start(made)
        sys.exit(2)
    except SystemExit as exited:
        if exited.code not in (0, None):
            _remove_failed_start(made)
        raise


def _remove_failed_start(made: list[Path]) -> None:
    """A start that failed before its first step leaves no folder behind: the run directory (and the `outputs/DATE`
    above it) that this start made, all of whose files it wrote, goes again; one that trained a step stays."""
    metrics = made[0] / "metrics.jsonl" if made else None
    if not made or (made[0] / "checkpoints").exists() or (metrics.exists() and metrics.stat().st_size):
        return
    shutil.rmtree(made[0], ignore_errors=True)
    for parent in made[1:]:
        try:
            parent.rmdir()
        except OSError:
            return


if __name__ == "__main__":
    main()
