"""One vocabulary across the tools: each spelling they used before (`--input`, `--output`, `--candidates`,
`objective.group_size`, GRPO's old reward names, `out_dir=`, `prompts=`) is answered with one line naming the new
one, exit status 2, before any library loads."""

import json
import subprocess
import sys

import pytest

from data_prep.cli import main as prep_main
from higgs_train.commands.generate import main as generate_main
from higgs_train.commands.train import main as train_main
from higgs_train.runtime.renamed import RENAMED

CASES = [
    ("higgs-prep", ["convert", "jsonl", "--input", "rows.jsonl", "--out", "data"], "--input is now --data"),
    ("higgs-prep", ["convert", "jsonl", "--data", "rows.jsonl", "--output=data"], "--output is now --out"),
    ("higgs-prep", ["pairs", "--model", "m", "--data", "d", "--out", "p", "--candidates", "4"],
     "--candidates is now --samples-per-prompt"),
    ("higgs-train", ["recipe=grpo_smoke", "objective.group_size=4"],
     "objective.group_size is now objective.samples_per_prompt"),
    ("higgs-train", ["recipe=grpo_smoke", "objective.rewards.similarity=0.1"],
     "objective.rewards.similarity is now objective.rewards.speaker_similarity"),
    ("higgs-generate", ["model=builtin:tiny", "prompts=prompts.jsonl"], "prompts is now list"),
    ("higgs-generate", ["model=builtin:tiny", "text=Hi.", "out_dir=wavs"], "out_dir is now out"),
]
MAINS = {"higgs-prep": "data_prep.cli", "higgs-train": "higgs_train.commands.train",
         "higgs-generate": "higgs_train.commands.generate"}


def test_every_old_spelling_has_a_case_here():
    assert {(tool, says.split(" is now ")[0]) for tool, _, says in CASES} <= \
        {(tool, old) for tool, renamed in RENAMED.items() for old in renamed}
    assert {tool for tool, _, _ in CASES} == set(RENAMED)


@pytest.mark.parametrize("tool, argv, says", CASES, ids=[says for _, _, says in CASES])
def test_an_old_spelling_is_answered_with_the_new_one(tool, argv, says, monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [tool, *argv])
    main = {"higgs-prep": prep_main, "higgs-train": train_main, "higgs-generate": generate_main}[tool]
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    assert capsys.readouterr().err == f"{tool}: error: {says}\n"
    assert not any(tmp_path.iterdir())  # nothing written, not even a run folder


CHILD = """
import importlib, json, sys
results = []
for tool, module, argv in json.loads(sys.argv[1]):
    sys.argv = [tool, *argv]
    try:
        importlib.import_module(module).main()
    except SystemExit as exited:
        results.append(exited.code)
print(json.dumps({"codes": results, "torch": "torch" in sys.modules}))
"""


@pytest.mark.slow  # a fresh interpreter, to see what the answers import
def test_the_answers_come_before_any_heavy_library_loads(tmp_path):
    cases = [(tool, MAINS[tool], argv) for tool, argv, _ in CASES]
    result = subprocess.run([sys.executable, "-c", CHILD, json.dumps(cases)], capture_output=True, text=True,
                            cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    said = json.loads(result.stdout.splitlines()[-1])
    assert said == {"codes": [2] * len(CASES), "torch": False}
    assert [line.split(": error: ")[1] for line in result.stderr.splitlines()] == [says for _, _, says in CASES]
