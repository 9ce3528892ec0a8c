"""The package as others use it: configs and launch files inside it, user recipes from their own folder, imports
that run one way, a CLI that starts without the trainer, and a wheel that works from any folder."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from higgs_train.commands.train import composition_error, user_config_dir
from higgs_train.config.files import CONFIG_DIR, RECIPES_DIR
from higgs_train.launch import LAUNCH_DIR, launch_files, resolve_deepspeed_config_file

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("house", ROOT / "scripts" / "house.py")
house = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(house)
LIBRARY = ROOT / "higgs_train"
RECIPES = sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))
USER_RECIPE = """# @package _global_
# anna's voice, starting from the shipped smoke recipe: higgs-train --config-dir my_configs recipe=anna
defaults:
  - smoke
  - _self_

seed: 5
trainer:
  max_steps: 2
eval:
  num_samples: 1
"""


def _imported_by(folder: Path) -> dict[str, set[str]]:
    return {str(path.relative_to(ROOT)): house.imports_of(path) for path in folder.rglob("*.py")}


@pytest.mark.parametrize(("folder", "forbidden"), [
    ("", ("data_prep",)),  # the library never imports its own prep tool
    ("evaluate", ("higgs_train.train",)),
    ("config", ("higgs_train.objectives", "higgs_train.train", "higgs_train.commands")),  # objectives read config
    ("data", ("higgs_train.train", "higgs_train.evaluate", "higgs_train.builtins", "higgs_train.objectives")),
    ("model", ("higgs_train.train", "higgs_train.evaluate", "higgs_train.data", "higgs_train.builtins")),
])
def test_imports_run_one_way(folder, forbidden):
    wrong = {file: sorted(m for m in modules if m.split(".")[0] in forbidden or m.startswith(forbidden))
             for file, modules in _imported_by(LIBRARY / folder).items()}
    assert not {file: modules for file, modules in wrong.items() if modules}


def test_the_configs_and_recipes_are_the_top_level_folders_and_every_package_ships():
    assert CONFIG_DIR == ROOT / "configs" and RECIPES_DIR == ROOT / "recipes"
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    packages = {".".join(p.parent.relative_to(ROOT).parts) for top in ("higgs_train", "data_prep")
                for p in (ROOT / top).rglob("__init__.py")}
    assert packages | {"higgs_train.configs", "higgs_train.recipes"} == listed


def test_the_cli_starts_without_torch_or_the_trainer():
    heavy = ("torch", "transformers", "higgs_train.train.recipe")
    code = f"import sys, higgs_train.commands.train; print(sorted(m for m in {heavy} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"


def test_help_lists_the_recipes(tmp_path):
    result = subprocess.run([sys.executable, "-m", "higgs_train.commands.train", "--help"], capture_output=True,
                            text=True,
                            timeout=60, cwd=tmp_path)
    assert result.returncode == 0
    [line] = [line for line in result.stdout.splitlines() if line.startswith("recipe:")]
    assert line == "recipe: " + ", ".join(RECIPES)
    assert "--config-dir DIR recipe=NAME" in result.stdout


def test_a_user_recipe_in_a_user_folder_composes_and_a_missing_one_is_named(tmp_path):
    (tmp_path / "recipe").mkdir()
    (tmp_path / "recipe" / "anna.yaml").write_text(USER_RECIPE)
    assert user_config_dir(["--config-dir", str(tmp_path), "recipe=anna"]) == str(tmp_path)
    assert user_config_dir([f"--config-dir={tmp_path}"]) == str(tmp_path)
    assert composition_error(["recipe=anna"], str(tmp_path)) is None
    assert "Could not find 'recipe/anna'" in composition_error(["recipe=anna"])
    assert "anna" in composition_error(["recipe=bob"], str(tmp_path))  # the user's recipes are listed with ours


def test_launch_files_are_found_from_any_folder(tmp_path, monkeypatch):
    assert set(launch_files()) == {"ddp", "fsdp", "zero2", "zero2_offload", "zero3", "zero3_offload"}
    printed = subprocess.run([sys.executable, "-m", "higgs_train.launch", "zero2"], capture_output=True, text=True,
                             timeout=60, cwd=tmp_path, check=True).stdout.strip()
    assert Path(printed) == LAUNCH_DIR / "zero2.yaml" and Path(printed).is_file()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_CONFIG_FILE", "zero3.json")  # as the shipped zero3.yaml names it
    resolve_deepspeed_config_file()
    assert os.environ["ACCELERATE_DEEPSPEED_CONFIG_FILE"] == str(LAUNCH_DIR / "zero3.json")
    (tmp_path / "zero3.json").write_text("{}")  # a user's own file of that name, where the run starts, wins
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_CONFIG_FILE", "zero3.json")
    resolve_deepspeed_config_file()
    assert os.environ["ACCELERATE_DEEPSPEED_CONFIG_FILE"] == "zero3.json"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A wheel of this checkout installed (no network, no editable link) into a fresh venv that borrows the
    dependencies of the one running the tests. Returns the fresh venv's bin folder."""
    where = tmp_path_factory.mktemp("wheel")
    source = where / "source"
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            (source / name).write_bytes((ROOT / name).read_bytes())
    pip = [sys.executable, "-m", "pip"]
    subprocess.run([*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(where / "dist"), str(source)],
                   check=True, timeout=300)
    venv = where / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    purelib = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site = Path(subprocess.run([venv / "bin" / "python", "-c", purelib], capture_output=True, text=True,
                               check=True).stdout.strip())
    (site / "borrowed_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")  # torch & co., not us
    [wheel] = (where / "dist").glob("higgs_train-*.whl")
    subprocess.run([*pip, "--python", str(venv / "bin" / "python"), "install", "-q", "--no-deps", "--no-index",
                    str(wheel)], check=True, timeout=300)
    return venv / "bin"


def _in_empty_folder(command: list[str], folder: Path) -> subprocess.CompletedProcess:
    folder.mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": ""}
    return subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=folder, env=env)


@pytest.mark.slow
def test_the_wheel_runs_every_recipe_and_a_user_recipe_from_an_empty_folder(installed, tmp_path, tiny_checkpoint,
                                                                            demo_dir):
    where = _in_empty_folder([installed / "python", "-c", "import higgs_train; print(higgs_train.__file__)"],
                             tmp_path / "a")
    assert where.stdout.startswith(str(installed.parent)), where.stdout + where.stderr
    listed = _in_empty_folder([installed / "higgs-train", "--help"], tmp_path / "b")
    assert "recipe: " + ", ".join(RECIPES) in listed.stdout.splitlines(), listed.stdout[-2000:]
    for recipe in RECIPES:
        composed = _in_empty_folder([installed / "higgs-train", f"recipe={recipe}", "data.path=x.jsonl", "--cfg",
                                     "job"], tmp_path / "b")
        assert composed.returncode == 0 and "max_steps:" in composed.stdout, composed.stderr[-2000:]

    smoke = _in_empty_folder([installed / "higgs-train", "recipe=smoke", "trainer.max_steps=2", "eval.num_samples=1",
                              f"hydra.run.dir={tmp_path / 'smoke'}"], tmp_path / "c")
    assert smoke.returncode == 0, smoke.stderr[-3000:]
    assert (tmp_path / "smoke" / "adapter" / "adapter_config.json").is_file()

    (tmp_path / "d" / "my_configs" / "recipe").mkdir(parents=True)
    (tmp_path / "d" / "my_configs" / "recipe" / "anna.yaml").write_text(USER_RECIPE)
    anna = _in_empty_folder([installed / "higgs-train", "--config-dir", "my_configs", "recipe=anna",
                             "hydra.run.dir=runs/anna"], tmp_path / "d")
    assert anna.returncode == 0, anna.stderr[-3000:]
    run = tmp_path / "d" / "runs" / "anna"
    assert '"steps": 2' in (run / "run_summary.json").read_text()
    assert "seed: 5" in (run / ".hydra" / "config.yaml").read_text()
    logged = (run / "train.log").read_text().splitlines()
    printed = [line.removeprefix("higgs-train: ") for line in anna.stdout.splitlines()
               if line.startswith("higgs-train: ")]
    assert any("parameters trained" in line for line in printed) and any("done in" in line for line in printed)
    assert all(any(entry.endswith(line) for entry in logged) for line in printed), (printed, logged)
