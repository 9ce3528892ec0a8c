"""Runs die; resuming must be as if nothing happened, and nothing half-written may be trusted."""

import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from higgs_train.objectives import sft as sft_module
from higgs_train.runtime.errors import TrainingError
from higgs_train.train import checkpoint as checkpoint_module
from higgs_train.train.recipe import train

# Several epochs of 3 batches, dropout on (so RNG state matters), a checkpoint every 4 steps, every step logged.
RUN = ["recipe=smoke", "trainer.max_steps=24", "trainer.save_every_n_steps=4", "trainer.keep_last_n=2",
       "data.max_examples=12", "peft.dropout=0.1", "eval.num_samples=0", "optim.scheduler=cosine",
       "optim.warmup_steps=3"]


def _cli(run_dir, *extra, wait=True):
    command = [sys.executable, "-m", "higgs_train.commands.train", *RUN, f"hydra.run.dir={run_dir}", *extra]
    if wait:
        return subprocess.run(command, capture_output=True, text=True, timeout=300)
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _losses(run_dir):
    return {r["step"]: r["loss"] for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())}


def _logged_steps(run_dir) -> int:
    path = run_dir / "metrics.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return json.loads(lines[-1])["step"] if lines and lines[-1].endswith("}") else 0


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_checkpoint, demo_dir):
    run_dir = tmp_path_factory.mktemp("resume") / "clean"
    result = _cli(run_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


PRECISIONS = {"fp32": (), "bf16_base": ("model.weights_dtype=bf16", "trainer.precision=bf16"),
              "adamw8bit": ("optim.name=adamw8bit",)}
# Variants that must give the plain run's losses, not only their own: DataLoader workers reading the training table.
SAME_LOSSES = {"2_workers": ("trainer.num_workers=2",)}


@pytest.mark.slow
@pytest.mark.parametrize("precision", [*PRECISIONS, *SAME_LOSSES])
def test_sigkill_at_a_random_step_then_resume_gives_the_same_losses_and_bit_identical_weights(precision, uninterrupted,
                                                                                             tmp_path):
    extra = PRECISIONS.get(precision) or SAME_LOSSES.get(precision, ())
    if precision in PRECISIONS and extra:  # its own uninterrupted reference
        uninterrupted = tmp_path / "clean"
        assert _cli(uninterrupted, *extra).returncode == 0
    kill_after = random.Random(7).randint(5, 19)  # seeded: a failure replays with the same kill step
    print(f"killing after step {kill_after}")
    run_dir = tmp_path / "killed"
    process = _cli(run_dir, *extra, wait=False)
    while _logged_steps(run_dir) < kill_after and process.poll() is None:
        time.sleep(0.002)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = _logged_steps(run_dir)
    assert process.returncode == -signal.SIGKILL and kill_after <= killed_at < 24, killed_at
    assert not (run_dir / "adapter").exists()

    resumed = _cli(run_dir, *extra, "resume=auto")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stdout
    assert _losses(run_dir) == _losses(uninterrupted)  # every step, exactly
    weights = load_file(run_dir / "adapter" / "adapter_model.safetensors")
    expected = load_file(uninterrupted / "adapter" / "adapter_model.safetensors")
    assert weights.keys() == expected.keys() and all(torch.equal(weights[k], expected[k]) for k in weights)
    kept = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert kept == ["step_00000020", "step_00000024"]  # keep_last_n=2


@pytest.mark.slow
@pytest.mark.parametrize("change, named", [
    ("peft.r=16", "peft.r was 8 there and is 16 now"),
    ("trainer.batch_size=2", "global batch was '4 rows x 1 accumulation x 1 processes' there"),
    ("data.max_examples=10", "data.max_examples was 12 there and is 10 now"),
    ("optim.lr=0.01", "optim.lr was 0.002 there and is 0.01 now"),
])
def test_resuming_with_an_incompatible_config_names_the_difference(uninterrupted, change, named):
    record = (uninterrupted / ".hydra" / "config.yaml").read_text()
    result = _cli(uninterrupted, "resume=auto", change)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("higgs-train: error: cannot resume from") and named in last, last
    assert (uninterrupted / ".hydra" / "config.yaml").read_text() == record  # the refused run records nothing


@pytest.mark.slow
def test_a_run_dir_holding_another_run_is_refused_unless_asked(uninterrupted):
    result = _cli(uninterrupted)
    assert result.returncode == 2
    assert "already holds a run" in result.stderr and "resume=auto" in result.stderr
    assert (uninterrupted / "metrics.jsonl").exists()


@pytest.mark.slow
def test_death_while_writing_a_checkpoint_resumes_from_the_previous_complete_one(compose_config, tmp_path,
                                                                                 monkeypatch, demo_dir, caplog):
    run_dir = tmp_path / "run"
    cfg = compose_config(*RUN, "trainer.max_steps=12")
    real_save = checkpoint_module._save_optimizer

    def dies_at_step_8(optimizer, folder):
        if folder.name == ".step_00000008.partial":
            raise KeyboardInterrupt  # the process is gone mid-write: weights written, optimizer and state not
        real_save(optimizer, folder)

    monkeypatch.setattr(checkpoint_module, "_save_optimizer", dies_at_step_8)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, run_dir)
    assert (run_dir / "checkpoints" / ".step_00000008.partial" / "trainable.safetensors").exists()
    monkeypatch.setattr(checkpoint_module, "_save_optimizer", real_save)

    caplog.set_level("INFO", logger="higgs_train")
    cfg = compose_config(*RUN, "trainer.max_steps=12", "resume=auto")
    summary = train(cfg, run_dir)
    messages = [record.getMessage() for record in caplog.records]
    assert any("resumed from" in m and m.rstrip().endswith("at step 4") for m in messages), messages
    assert summary["steps"] == 12
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step_00000008", "step_00000012"]
    assert sorted(_losses(run_dir)) == list(range(1, 13))


def _poison(monkeypatch, bad_calls):
    """Make the loss non-finite on the given micro-batch calls (1-based)."""
    real = sft_module.audio_loss_terms
    calls = {"n": 0}

    def poisoned(model, batch, config, text_head=None):
        calls["n"] += 1
        terms = real(model, batch, config, text_head)
        if calls["n"] in bad_calls:
            terms.sums = terms.sums * float("nan")
        return terms

    monkeypatch.setattr(sft_module, "audio_loss_terms", poisoned)


@pytest.mark.slow  # an end-to-end training run
def test_a_non_finite_step_is_skipped_and_counted(compose_config, tmp_path, monkeypatch, demo_dir):
    _poison(monkeypatch, bad_calls={3})
    run_dir = tmp_path / "run"
    summary = train(compose_config(*RUN, "trainer.max_steps=6"), run_dir)
    assert summary["skipped_steps"] == 1 and summary["steps"] == 6
    assert sorted(_losses(run_dir)) == [1, 2, 4, 5, 6]
    weights = load_file(run_dir / "adapter" / "adapter_model.safetensors")
    assert all(torch.isfinite(w).all() for w in weights.values())


@pytest.mark.slow  # an end-to-end training run
def test_too_many_non_finite_steps_stop_the_run_with_a_good_checkpoint(compose_config, tmp_path, monkeypatch,
                                                                      demo_dir):
    _poison(monkeypatch, bad_calls=set(range(3, 100)))
    run_dir = tmp_path / "run"
    with pytest.raises(TrainingError, match="3 non-finite steps in a row .* saved in .*step_00000005"):
        train(compose_config(*RUN, "trainer.max_steps=10"), run_dir)
    saved = load_file(run_dir / "checkpoints" / "step_00000005" / "trainable.safetensors")
    assert all(torch.isfinite(w).all() for w in saved.values())
    state = json.loads((run_dir / "checkpoints" / "step_00000005" / "trainer_state.json").read_text())["state"]
    assert state["skipped_steps"] == 3


def test_metrics_logged_after_the_checkpoint_are_dropped_on_resume_even_a_half_written_line(tmp_path):
    from higgs_train.train.run_dir import truncate_metrics

    path = tmp_path / "eval.jsonl"
    path.write_text("".join(json.dumps({"step": s, "val_loss": 1.0}) + "\n" for s in (2, 4, 6)) + '{"step": 8, "val')
    truncate_metrics(path, 4)
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [2, 4]


# ---- the trust catalog's cases that need a trained run (tests/test_trust.py has the rest) --------------------------
@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "ctrl-c"])
def test_preemption_saves_at_the_next_step_and_resume_gives_the_same_losses(sig, uninterrupted, tmp_path):
    stop_after = random.Random(11).randint(5, 19)
    run_dir = tmp_path / "preempted"
    process = subprocess.Popen([sys.executable, "-m", "higgs_train.commands.train", *RUN, f"hydra.run.dir={run_dir}"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    while _logged_steps(run_dir) < stop_after and process.poll() is None:
        time.sleep(0.002)
    process.send_signal(sig)
    stderr = process.communicate(timeout=120)[1]
    last = stderr.strip().splitlines()[-1]
    assert process.returncode == 1 and "Traceback" not in stderr, stderr[-3000:]
    assert last.startswith(f"higgs-train: error: stopped by {sig.name} after step ") and \
        last.endswith(f"out={run_dir} resume=auto"), last  # the one vocabulary: out= names the run folder
    stopped_at = int(last.split("after step ")[1].split(";")[0])
    assert (run_dir / "checkpoints" / f"step_{stopped_at:08d}").is_dir() and stopped_at < 24
    if sig == signal.SIGINT:
        return  # the same path as SIGTERM from here on
    state = json.loads((run_dir / "checkpoints" / f"step_{stopped_at:08d}" / "trainer_state.json").read_text())
    resumed = _cli(run_dir, "resume=auto")
    assert resumed.returncode == 0 and f"at step {stopped_at}" in resumed.stdout, resumed.stderr[-3000:]
    assert _losses(run_dir) == _losses(uninterrupted)
    elapsed = {r["step"]: r["elapsed_s"] for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())}
    # the run's wall clock goes on across the resume, from what the checkpoint recorded
    assert elapsed[stopped_at] - 0.001 <= state["state"]["wall_seconds"] < elapsed[stopped_at + 1]  # 0.001: rounding
    assert list(elapsed.values()) == sorted(elapsed.values())


def _died_after_its_last_checkpoint(uninterrupted, tmp_path):
    """A copy of the finished run as if it died between its final checkpoint and its final weights."""
    run_dir = tmp_path / "died"
    shutil.copytree(uninterrupted, run_dir)
    shutil.rmtree(run_dir / "adapter")
    (run_dir / "run_summary.json").unlink()
    return run_dir


@pytest.mark.slow
def test_resume_from_the_final_step_checkpoint_finishes_the_run_then_reports_it_finished(uninterrupted, tmp_path):
    run_dir = _died_after_its_last_checkpoint(uninterrupted, tmp_path)
    resumed = _cli(run_dir, "resume=auto")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = json.loads((run_dir / "run_summary.json").read_text())
    assert summary["final_loss"] == json.loads((uninterrupted / "run_summary.json").read_text())["final_loss"]
    again = _cli(run_dir, "resume=auto")
    assert again.returncode == 0 and "already finished at step 24" in again.stdout, again.stderr[-3000:]
    assert json.loads((run_dir / "run_summary.json").read_text()) == summary  # never rewritten


@pytest.mark.slow
def test_a_damaged_newest_checkpoint_falls_back_to_the_intact_one_with_the_same_losses(uninterrupted, tmp_path):
    run_dir = _died_after_its_last_checkpoint(uninterrupted, tmp_path)
    weights = run_dir / "checkpoints" / "step_00000024" / "trainable.safetensors"
    data = bytearray(weights.read_bytes())
    data[-7] ^= 0x01  # one bit, in range: only the checksum can tell
    weights.write_bytes(bytes(data))
    resumed = _cli(run_dir, "resume=auto")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "warning: checkpoint" in resumed.stdout and "step_00000024 is damaged (trainable.safetensors differs" \
        in resumed.stdout
    assert "resumed from" in resumed.stdout and "step_00000020 at step 20" in resumed.stdout
    assert _losses(run_dir) == _losses(uninterrupted)


FULL_DISK = """import errno, os, sys
real = os.replace
def replace(src, dst, *args, **kwargs):
    if "checkpoints" in str(dst):
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))
    return real(src, dst, *args, **kwargs)
os.replace = replace
sys.argv = ["higgs-train", *sys.argv[1:]]
from higgs_train.commands.train import main
main()
"""


@pytest.mark.slow
def test_a_full_disk_is_one_line_in_train_and_export(uninterrupted, tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "full"
    result = subprocess.run([sys.executable, "-c", FULL_DISK, *RUN, "trainer.max_steps=4", f"hydra.run.dir={run_dir}"],
                            capture_output=True, text=True, timeout=300)
    last = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert last.startswith("higgs-train: error: cannot write ") and "No space left on device" in last, last
    assert not (run_dir / "checkpoints" / "step_00000004").exists()

    from higgs_train.commands.export import main as export_main

    def no_space(src, dst, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    monkeypatch.setattr(sys, "argv", ["higgs-export", f"run_dir={uninterrupted}", f"out={tmp_path / 'export'}"])
    monkeypatch.setattr(os, "replace", no_space)
    with pytest.raises(SystemExit) as exited:
        export_main()
    err = capsys.readouterr().err.strip().splitlines()
    assert exited.value.code == 1 and err[-1].startswith("higgs-export: error: cannot write "), err
    assert not (tmp_path / "export").exists() and not list(tmp_path.glob(".export.partial*"))
