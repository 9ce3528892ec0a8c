"""`higgs-train recipe=smoke` end to end, as a user runs it: artifacts, a falling loss, an adapter that loads."""

import json
import subprocess
import sys

import pytest
import soundfile as sf
import torch
import yaml
from peft import PeftModel
from transformers import HiggsAudioV2ForConditionalGeneration

pytestmark = pytest.mark.slow  # end-to-end runs in subprocesses


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, tiny_checkpoint, demo_dir):
    run_dir = tmp_path_factory.mktemp("smoke") / "run"
    result = subprocess.run([sys.executable, "-m", "higgs_train.cli", "recipe=smoke", f"hydra.run.dir={run_dir}"],
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
    assert last < first - 0.5, (first, last)
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
    _, result = smoke_run
    assert "training" in result.stderr and "20/20" in result.stderr
    assert "higgs-train: done" in result.stdout
