"""The Hydra configs `higgs-train` composes (a folder per group; `recipe/` holds the presets), shipped in the
package."""

from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent
RECIPES_DIR = CONFIG_DIR / "recipe"
