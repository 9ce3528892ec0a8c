"""`higgs-train recipe=smoke` end to end, as a user runs it: artifacts, a falling loss, an adapter that loads."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import soundfile as sf
import torch
import yaml
from browser import open_in_chromium
from peft import PeftModel
from transformers import HiggsAudioV2ForConditionalGeneration

pytestmark = pytest.mark.slow  # end-to-end runs in subprocesses


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, tiny_checkpoint, demo_dir):
    run_dir = tmp_path_factory.mktemp("smoke") / "run"
    result = subprocess.run([sys.executable, "-m", "higgs_train.commands.train", "recipe=smoke",
                             f"hydra.run.dir={run_dir}"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir, result


def test_run_directory_holds_every_artifact(smoke_run):
    run_dir, _ = smoke_run
    assert yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())["trainer"]["max_steps"] == 20
    assert (run_dir / "adapter" / "adapter_config.json").is_file()
    wavs = sorted((run_dir / "samples" / "step_20").glob("*.wav"))
    assert len(wavs) == 2 and all(sf.info(w).samplerate == 24000 for w in wavs)
    summary = json.loads((run_dir / "run_summary.json").read_text())
    assert summary["steps"] == 20 and "stop_rate" in summary


def test_loss_went_down(smoke_run):
    run_dir, _ = smoke_run
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(1, 21))
    first, last = records[0]["loss"], sum(r["loss"] for r in records[-5:]) / 5
    assert last < first - 0.5 / 8, (first, last)  # 0.5 nats over the 8 codebooks
    assert len(records[0]["loss_per_codebook"]) == 8


def test_adapter_loads_on_a_fresh_base_and_changes_it(smoke_run, tiny_checkpoint):
    run_dir, _ = smoke_run
    base = HiggsAudioV2ForConditionalGeneration.from_pretrained(tiny_checkpoint)
    inputs = {"input_ids": torch.tensor([[1, 2, 3, 4]])}
    with torch.no_grad():
        base_logits = base(**inputs).logits
        tuned = PeftModel.from_pretrained(base, run_dir / "adapter")
        tuned_logits = tuned(**inputs).logits
    assert not torch.allclose(base_logits, tuned_logits, atol=1e-4)


def test_progress_is_shown(smoke_run):
    run_dir, result = smoke_run
    assert "training" in result.stderr and "20/20" in result.stderr
    assert "validation: " in result.stderr and "generating samples: " in result.stderr  # no silence after the bar
    assert f"weights in {run_dir / 'adapter'}, 2 samples in {run_dir / 'samples'}" in result.stdout.splitlines()[-1]


OUR_BARS = ("encoding audio", "measuring", "training", "validation", "generating samples", "speaking the demo data")


def test_a_default_run_shows_our_lines_and_bars_only(smoke_run):
    """No library warnings, deprecation notices or loading bars (verbose=true shows them)."""
    _, result = smoke_run
    stderr_lines = [line.strip() for line in result.stderr.replace("\r", "\n").splitlines() if line.strip()]
    assert [line for line in stderr_lines if not line.startswith(OUR_BARS)] == []
    assert all(line.startswith("higgs-train: ") for line in result.stdout.splitlines() if line.strip())


@pytest.mark.skipif(shutil.which("chromium") is None and os.environ.get("CI") != "true",
                    reason="no chromium: bash scripts/setup.sh --dev installs it (CI always has it)")
def test_report_html_loads_in_a_headless_browser_with_curves_and_every_clip(smoke_run, tmp_path):
    run_dir, _ = smoke_run
    page = (run_dir / "report.html").read_text()
    charts = ("loss curve", "loss per codebook", "evaluation metrics")  # the last: the evaluations at steps 10, 20
    assert all(page.count(f'alt="{c}" src="data:image/png;base64,') == 1 for c in charts)
    assert "<h2>Run settings</h2>" in page and "<th>lr</th><td class='text'>0.002 (constant" in page
    assert "<td>10</td>" in page and "<td>20</td>" in page
    assert page.count("<audio ") == 8  # 2 samples at each of 2 evaluations, and the clips they should match
    assert "not measured (set eval.asr_model)" in page and "stopped False" not in page
    checked, console = open_in_chromium(run_dir / "report.html")
    assert checked == {"audio": 8, "missing": 0, "broken_images": 0}, console
    assert "Uncaught" not in console and "Failed to load resource" not in console, console

    from higgs_train.evaluate.report import write_report

    moved = tmp_path / "moved"  # a moved run dir's report, rewritten there, whose sample went missing, says so
    shutil.copytree(run_dir, moved)
    next((moved / "samples" / "step_20").glob("*.wav")).unlink()
    checked, _ = open_in_chromium(write_report(moved))
    assert checked["missing"] == 1
