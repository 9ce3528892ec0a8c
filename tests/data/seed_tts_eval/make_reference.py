"""Writes reference.json: Seed-TTS-eval's own word error rate for each case of cases.json, which
tests/test_metrics.py holds `higgs_train.evaluate.judges.word_errors` to.

Seed-TTS-eval's `run_wer.py` loads its ASR models and runs as soon as it is imported, so this script takes from it
only the two definitions that score text, `punctuation_all` and `process_one`, and executes them unchanged (read
from the checkout, not copied here) with the same imports. As `run_asr` does, a Chinese hypothesis goes through
`zhconv.convert(..., 'zh-cn')` first. A case Seed's code refuses (an empty reference: jiwer raises) is stored with
the error. Then `average_wer.py` itself averages the per-utterance lines of each language, in the format `run_asr`
writes them.

    git clone https://github.com/BytedanceSpeech/seed-tts-eval /tmp/seed-tts-eval
    python -m venv /tmp/seedref && /tmp/seedref/bin/pip install "jiwer==3.1.0" zhon==2.1.1 zhconv==1.4.3 numpy
    /tmp/seedref/bin/python tests/data/seed_tts_eval/make_reference.py /tmp/seed-tts-eval

(jiwer 4 removed the `compute_measures` that run_wer.py imports; 3.1.0 is the last release that has it.)
"""

import ast
import json
import string
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

import zhconv
from jiwer import compute_measures
from zhon.hanzi import punctuation

HERE = Path(__file__).parent


def seed_scoring(checkout: Path, lang: str):
    """run_wer.py's `process_one`, with its module globals (`punctuation_all`, `lang`) as run_wer.py sets them."""
    tree = ast.parse((checkout / "run_wer.py").read_text())
    wanted = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "process_one"
              or isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "punctuation_all"
                                                      for t in node.targets)]
    namespace = {"compute_measures": compute_measures, "punctuation": punctuation, "string": string, "lang": lang}
    exec(compile(ast.Module(body=wanted, type_ignores=[]), "run_wer.py", "exec"), namespace)
    return namespace["process_one"]


def main(checkout: Path) -> None:
    cases = json.loads((HERE / "cases.json").read_text())
    results, lines = [], {"en": [], "zh": []}
    for index, case in enumerate(cases):
        hypothesis = case["hypothesis"]
        if case["language"] == "zh":
            hypothesis = zhconv.convert(hypothesis, "zh-cn")
        try:
            raw_truth, raw_hypo, wer, subs, dele, inse = seed_scoring(checkout, case["language"])(hypothesis,
                                                                                                 case["reference"])
        except ValueError as error:
            results.append({**case, "refused": str(error)})
            continue
        results.append({**case, "wer": wer})
        if not any(c in raw_truth + raw_hypo for c in "\t\n"):  # average_wer.py splits its lines on tabs
            lines[case["language"]].append((index, f"case{index}.wav\t{wer}\t{raw_truth}\t{raw_hypo}\t{inse}\t{dele}"
                                                   f"\t{subs}\n"))
    averages = {}
    with tempfile.TemporaryDirectory() as scratch:
        for language, rows in lines.items():
            infile, outfile = Path(scratch) / f"{language}.txt", Path(scratch) / f"{language}_out.txt"
            infile.write_text("".join(line for _, line in rows))
            printed = subprocess.run([sys.executable, str(checkout / "average_wer.py"), str(infile), str(outfile)],
                                     capture_output=True, text=True, check=True).stdout
            averages[language] = {"cases": [index for index, _ in rows], "printed": printed.strip()}
    commit = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    made_with = {"seed-tts-eval": commit or "unknown", **{p: version(p) for p in ("jiwer", "zhon", "zhconv")}}
    (HERE / "reference.json").write_text(json.dumps({"made_with": made_with, "cases": results,
                                                     "average_wer": averages}, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
