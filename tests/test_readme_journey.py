"""The README's journey ("From your folder of wavs to an exported adapter"), run line by line as the README spells it
on a fresh clone: the commands are read from README.md itself, so a journey that stops working fails here. Only what
a CPU test cannot have is swapped: the demo clips stand in for /data/voices, the tiny checkpoint for the hub model,
the CPU for CUDA, and a few steps for a real run."""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOOLS = {"higgs-prep": "data_prep.cli", "higgs-train": "higgs_train.commands.train", "higgs-export":
"higgs_train.commands.export",
         "higgs-generate": "higgs_train.commands.generate", "higgs-eval": "higgs_train.commands.eval"}
TINY_RUN = ["model=tiny", "trainer.device=cpu", "trainer.precision=fp32", "trainer.max_steps=3",
            "eval.max_new_tokens=40"]


def journey_commands() -> list[list[str]]:
    """The bash block under the journey's heading, one argument list per command (comments and `\\` joins as bash
    reads them)."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### From your folder of wavs to an exported adapter"):]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [words for line in block.replace("\\\n", " ").splitlines() if (words := shlex.split(line, comments=True))]


def test_the_journey_spells_where_the_tools_are():
    """After set-up the tools are in .venv/bin only: a bare `higgs-prep` is "command not found"."""
    commands = journey_commands()
    assert len(commands) == 6
    assert all(words[0].startswith(".venv/bin/") and words[0].removeprefix(".venv/bin/") in TOOLS
               for words in commands)


def _voices(demo_dir: Path, folder: Path) -> None:
    """An audiofolder like the README's /data/voices: two speakers, anna and bo, six clips each."""
    folder.mkdir()
    rows = [json.loads(line) for line in (demo_dir / "train.jsonl").read_text().splitlines()]
    lines = ["file_name,text,speaker"]
    for speaker, voice in (("anna", "alice"), ("bo", "bruno")):
        mine = [row for row in rows if row["speaker"] == voice][:6]
        for index, row in enumerate(mine, start=1):
            clip = row["messages"][-1]["content"][0]["path"]
            text = next(part["text"] for message in row["messages"] if message["role"] == "user"
                        for part in message["content"] if part["type"] == "text")
            name = f"{speaker}_{index:03d}.wav"
            shutil.copy(demo_dir / clip, folder / name)
            lines.append(f'{name},"{text}",{speaker}')
    (folder / "metadata.csv").write_text("\n".join(lines) + "\n")
    (folder / "speakers.json").write_text(json.dumps({"anna": "feminine, calm", "bo": "masculine, deep"}))


def _as_run_here(words: list[str], voices: Path, checkpoint: Path) -> list[str]:
    tool = words[0].removeprefix(".venv/bin/")
    swapped = [word.replace("/data/voices", str(voices)).replace("eustlb/higgs-v2", str(checkpoint))
               for word in words[1:]]
    swapped = ["cpu" if word == "cuda" else word for word in swapped]
    extra = {"higgs-train": TINY_RUN, "higgs-generate": ["max_new_tokens=40", "device=cpu"]}.get(tool, [])
    return [sys.executable, "-m", TOOLS[tool], *swapped, *extra]


@pytest.mark.slow  # six tool runs, one of them a short training
def test_the_readme_journey_runs_as_written(tmp_path, demo_dir, tiny_checkpoint):
    voices = tmp_path / "voices"
    _voices(demo_dir, voices)
    checkout = tmp_path / "checkout"  # the commands' relative paths (runs/voices) land in the user's checkout
    checkout.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path / "tmp")}
    (tmp_path / "tmp").mkdir()
    said = []
    for words in journey_commands():
        result = subprocess.run(_as_run_here(words, voices, tiny_checkpoint), cwd=checkout, env=env,
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"{shlex.join(words)}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
        said.append(result.stdout)
    # 4 of 12 clips held out is a third of a small dataset: said, with the setting that changes it
    assert "4 of 12 conversations (33%) are held out for validation and not trained on (eval.val_size=4)" in said[3]
    run = checkout / "runs" / "voices"
    assert (run / "report.html").is_file() and (run / "export" / "adapter" / "adapter_config.json").is_file()
    assert (checkout / "speech" / "hello.wav").is_file()
    assert not list((tmp_path / "tmp").iterdir())  # the dry run left no scratch folder behind
