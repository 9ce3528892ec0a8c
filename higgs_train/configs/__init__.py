"""The Hydra configs `higgs-train` composes (a folder per group; `recipe/` holds the presets), shipped in the
package."""

from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent
RECIPES_DIR = CONFIG_DIR / "recipe"


def compose_config(overrides: list[str], return_hydra_config: bool = False):
    """The config `higgs-train` would run for these command-line overrides (Hydra's compose API, outside a run);
    a `hydra.searchpath=[file://DIR]` override adds a user's config folder, as `--config-dir DIR` does."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
            return compose(config_name="config", overrides=list(overrides), return_hydra_config=return_hydra_config)
    finally:
        GlobalHydra.instance().clear()
