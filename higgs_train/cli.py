"""`higgs-train recipe=NAME key=value ...`: compose the config with Hydra, check it, then run the job.

The configs ship inside the package (`higgs_train/configs/`, recipes in its `recipe/` group), so an installed wheel
finds them from any folder; `--config-dir DIR` adds a folder of the user's own (`DIR/recipe/NAME.yaml`). Only Hydra
and the config checks are imported before the job starts, so `--help` and config mistakes answer at once.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from higgs_train.config import validate
from higgs_train.configs import compose_config
from higgs_train.errors import TrainingError, UserError
from higgs_train.logs import is_main_process, logger

USER_CONFIG_FLAGS = ("--config-dir", "-cd")


@hydra.main(config_path="configs", config_name="config", version_base=None)
def _run(cfg: DictConfig) -> None:
    try:
        validate(cfg)
        run_dir = Path(HydraConfig.get().runtime.output_dir)
        if cfg.dry_run:
            from higgs_train.dry_run import dry_run

            dry_run(cfg, run_dir)
            return
        from higgs_train.train.recipe import train

        train(cfg, run_dir)
    except UserError as error:
        logger.error(error)
        sys.exit(2)
    except TrainingError as error:
        logger.error(error)
        sys.exit(1)


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

    overrides = [o for o in overrides if not o.startswith("hydra")]
    if config_dir:
        overrides.append(f"hydra.searchpath=[file://{Path(config_dir).resolve()}]")
    try:
        compose_config(overrides)
    except MissingConfigException as error:
        group = next((o.split("=")[0] for o in overrides if error.missing_cfg_file and
                      o.startswith(error.missing_cfg_file.split("/")[0] + "=")), None)
        choices = ", ".join(sorted(error.options or []))
        return f"{str(error).splitlines()[0].strip()}; available {group or 'options'}: {choices}"
    except (HydraException, OmegaConfBaseException) as error:
        first = str(error).strip().splitlines()[0].rstrip(".")
        if first.startswith("Could not override"):
            return f"{first}: no such key; `higgs-train --cfg job` prints every key (or add it with a leading +)"
        return first
    return None


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
    overrides = _checkable(sys.argv[1:])
    if overrides:
        error = composition_error(overrides, user_config_dir(sys.argv[1:]))
        if error:
            print(f"higgs-train: error: {error}", file=sys.stderr)
            sys.exit(2)
    _run()


if __name__ == "__main__":
    main()
