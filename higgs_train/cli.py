"""`higgs-train recipe=NAME key=value ...`: compose the config with Hydra, check it, then run the job."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from higgs_train.config import ConfigError, validate
from higgs_train.data.conversations import DataError
from higgs_train.model.freezing import FreezeConfigError
from higgs_train.model.loading import ModelLoadError
from higgs_train.model.peft_setup import PeftConfigError
from higgs_train.train.checkpoint import ResumeError
from higgs_train.train.loop import TrainingError
from higgs_train.train.run_dir import RunDirError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = PROJECT_ROOT / "configs"
RECIPES_DIR = PROJECT_ROOT / "recipes"
USER_ERRORS = (ConfigError, DataError, ModelLoadError, PeftConfigError, FreezeConfigError, RunDirError, ResumeError)


def register_recipes() -> None:
    """Expose `recipes/*.yaml` as the `recipe` config group (each one a `_global_` package)."""
    store = ConfigStore.instance()
    for path in sorted(RECIPES_DIR.glob("*.yaml")):
        store.store(group="recipe", name=path.stem, node=OmegaConf.load(path), package="_global_")


@hydra.main(config_path=str(CONFIG_DIR), config_name="config", version_base=None)
def _run(cfg: DictConfig) -> None:
    try:
        validate(cfg)
        run_dir = Path(HydraConfig.get().runtime.output_dir)
        if cfg.dry_run:
            from higgs_train.dry_run import dry_run

            dry_run(cfg, run_dir)
            return
        from higgs_train.train.loop import train

        train(cfg, run_dir)
    except USER_ERRORS as error:
        print(f"higgs-train: error: {error}", file=sys.stderr)
        sys.exit(2)
    except TrainingError as error:
        print(f"higgs-train: error: {error}", file=sys.stderr)
        sys.exit(1)


def composition_error(overrides: list[str]) -> str | None:
    """Hydra's multi-line complaint about a mistyped key or unknown recipe, as one line; None when it composes."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException, MissingConfigException
    from omegaconf.errors import OmegaConfBaseException

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
            compose(config_name="config", overrides=[o for o in overrides if not o.startswith("hydra")])
    except MissingConfigException as error:
        group = next((o.split("=")[0] for o in overrides if error.missing_cfg_file and
                      o.startswith(error.missing_cfg_file.split("/")[0] + "=")), None)
        choices = ", ".join(sorted(error.options or []))
        return f"{str(error).splitlines()[0].strip()}; available {group or 'options'}: {choices}"
    except (HydraException, OmegaConfBaseException) as error:
        first = str(error).strip().splitlines()[0].rstrip(".")
        if first.startswith("Could not override"):
            return f"{first}: no such key; check its spelling in configs/ (or add it with a leading +)"
        return first
    finally:
        GlobalHydra.instance().clear()
    return None


def _quiet_hydra_on_other_ranks() -> None:
    """Under `accelerate launch`/torchrun only rank 0 writes Hydra's run directory; the others write nothing (their
    `${now}` may differ) and receive rank 0's directory once the process group is up."""
    if int(os.environ.get("RANK", "0")) > 0:
        sys.argv = [a for a in sys.argv if not a.startswith("hydra.run.dir=")] + [
            "hydra.run.dir=.", "hydra.output_subdir=null", "hydra/job_logging=disabled",
            "hydra/hydra_logging=disabled"]


def main() -> None:
    register_recipes()
    _quiet_hydra_on_other_ranks()
    overrides = sys.argv[1:]
    if overrides and not any(o.startswith("-") for o in overrides):  # Hydra's own flags (--help, --cfg) pass by
        error = composition_error(overrides)
        if error:
            print(f"higgs-train: error: {error}", file=sys.stderr)
            sys.exit(2)
    _run()


if __name__ == "__main__":
    main()
