"""Every command line the studio runs, built here and only here: typed values in, an argv list out (never a shell
string), and the same command as a user would type it, for the page to show and a cluster to copy.

The studio runs each tool as `python -m MODULE` with this interpreter, which is the installed console script's code;
the shown form names the console script (`higgs-train ...`)."""

from __future__ import annotations

import re
import shlex
import sys
from dataclasses import dataclass

MODULES = {"higgs-train": "higgs_train.commands.train", "higgs-prep": "data_prep.cli",
           "higgs-eval": "higgs_train.commands.eval", "higgs-export": "higgs_train.commands.export",
           "higgs-generate": "higgs_train.commands.generate"}
EXPORT_KINDS = {"adapter": [], "merged": ["merge=true"], "boson": ["format=boson"]}
_PLAIN_OVERRIDE = re.compile(r"[\w./:@+-]*")  # what Hydra's override grammar reads as a bare value


@dataclass(frozen=True)
class Command:
    tool: str
    args: tuple[str, ...]

    def argv(self) -> list[str]:
        return [sys.executable, "-m", MODULES[self.tool], *self.args]

    def shown(self) -> str:
        return shlex.join([self.tool, *self.args])


def hydra_value(value) -> str:
    """A typed value as Hydra's override grammar reads it back unchanged (text with spaces or commas quoted)."""
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    text = str(value)
    if isinstance(value, (int, float)) or _PLAIN_OVERRIDE.fullmatch(text):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def ingest(source: str, output: str, asr: str | None = None) -> Command:
    return Command("higgs-prep", ("ingest", "--data", source, "--out", output, *(("--asr", asr) if asr else ())))


def convert(source_format: str, source: str, output: str) -> Command:
    return Command("higgs-prep", ("convert", source_format, "--data", source, "--out", output))


def train(recipe: str, run_dir: str, settings: dict, config_dir: str | None = None, dry_run: bool = False) -> Command:
    """`higgs-train recipe=... key=value ... out=RUN_DIR`. A start and a resume are the same command
    (`resume=auto` starts fresh in an empty run folder and goes on from the newest checkpoint otherwise); a dry run
    writes nothing."""
    args = [*(("--config-dir", config_dir) if config_dir else ()), f"recipe={recipe}"]
    args += [f"{key}={hydra_value(value)}" for key, value in settings.items() if value not in (None, "")]
    args += [f"out={hydra_value(run_dir)}", "dry_run=true" if dry_run else "resume=auto"]
    return Command("higgs-train", tuple(args))


def train_again(overrides: list[str], run_dir: str) -> Command:
    """The command that continues a run from its own record of how it was started (`.hydra/overrides.yaml`)."""
    replaced = ("dry_run", "resume", "overwrite", "out", "hydra.run.dir")
    kept = [o for o in overrides if o.split("=", 1)[0] not in replaced]
    return Command("higgs-train", (*kept, f"out={hydra_value(run_dir)}", "resume=auto"))


def _list(values: list[str]) -> str:
    return values[0] if len(values) == 1 else "[" + ",".join(values) + "]"


def evaluate(models: list[str], adapters: list[str], test_list: str, out: str, settings: dict) -> Command:
    """`higgs-eval`: the first model is the baseline; adapters ride on it; every variant is compared with it."""
    args = [f"model={_list(models)}", *([f"adapter={_list(adapters)}"] if adapters else []), f"list={test_list}",
            f"out={out}", *(f"{key}={value}" for key, value in settings.items() if value not in (None, ""))]
    return Command("higgs-eval", tuple(args))


def export(run_dir: str, kind: str, checkpoint: str | None = None, out: str | None = None) -> Command:
    args = [f"run_dir={run_dir}", *EXPORT_KINDS[kind], *([f"checkpoint={checkpoint}"] if checkpoint else []),
            *([f"out={out}"] if out else [])]
    return Command("higgs-export", tuple(args))


def generate(model: str, text: str, out: str, name: str, adapter: str | None = None, scene: str | None = None,
             speakers: str | None = None, reference_audio: list[str] | None = None,
             reference_text: str | None = None, settings: dict | None = None) -> Command:
    """`higgs-generate`; which of the four workflows follows from what is given (see higgs-generate --help)."""
    given = {"model": model, "adapter": adapter, "text": text, "scene": scene, "speakers": speakers,
             "reference_audio": _list(reference_audio) if reference_audio else None,
             "reference_text": reference_text, "out": out, "id": name, **(settings or {})}
    return Command("higgs-generate", tuple(f"{key}={value}" for key, value in given.items() if value not in (None, "")))
