"""Where the Hydra configs are: the config groups in `configs/` and the recipes (`recipe=NAME`) in `recipes/`, at the
top of a checkout; a wheel carries the same two folders inside the package (`higgs_train/configs`,
`higgs_train/recipes`, mapped by pyproject.toml), so an installed package finds them from any folder.

Hydra reads the groups from `configs/`; the recipes are registered as its `recipe` group (each one a `_global_`
preset), so a user's own `DIR/recipe/NAME.yaml` (`--config-dir DIR`) sits beside them and may start from one.
"""

from __future__ import annotations

from pathlib import Path

from higgs_train.config.checks import ConfigError
from higgs_train.config.store import register_schemas, type_error_line

_PACKAGE = Path(__file__).resolve().parents[1]  # higgs_train/


def _folder(name: str) -> Path:
    inside = _PACKAGE / name  # a wheel install
    return inside if inside.is_dir() else _PACKAGE.parent / name  # a checkout (editable install)


CONFIG_DIR = _folder("configs")
RECIPES_DIR = _folder("recipes")


def recipe_names() -> list[str]:
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


def register_recipes() -> None:
    """The presets of `recipes/` as Hydra's `recipe` group."""
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    store = ConfigStore.instance()
    for name in recipe_names():
        store.store(group="recipe", name=name, node=OmegaConf.load(RECIPES_DIR / f"{name}.yaml"), package="_global_",
                    provider="higgs-train")


def register_configs() -> None:
    """The schemas and the recipes in Hydra's ConfigStore, before any composition."""
    register_schemas()
    register_recipes()


def compose_config(overrides: list[str], return_hydra_config: bool = False):
    """The config `higgs-train` would run for these command-line overrides (Hydra's compose API, outside a run);
    a `hydra.searchpath=[file://DIR]` override adds a user's config folder, as `--config-dir DIR` does. A value of
    the wrong type is a `ConfigError` naming the key, as the field's check words it."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import ConfigCompositionException

    register_configs()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
            return compose(config_name="config", overrides=list(overrides), return_hydra_config=return_hydra_config)
    except ConfigCompositionException as error:
        line = type_error_line(error)
        if line is None:
            raise
        raise ConfigError(line) from None
    finally:
        GlobalHydra.instance().clear()
