"""What higgs-studio reads from a run folder: the curves, each evaluation's samples beside their targets, and the
run's state (running while a process holds its lock, stopped with a checkpoint, finished)."""

from __future__ import annotations

import fcntl
import json

from higgs_train.runtime.run_lock import LOCK_FILE
from higgs_train.studio import runs


def _run(tmp_path):
    run = tmp_path / "runs" / "a"
    (run / ".hydra").mkdir(parents=True)
    (run / "metrics.jsonl").write_text('{"step": 1, "loss": 2.5}\n{"step": 2, "loss": 2.0}\n{"step": 3, "lo')
    sample = run / "samples" / "step_2" / "u1.wav"
    sample.parent.mkdir(parents=True)
    sample.write_bytes(b"RIFF")
    evaluation = {"step": 2, "val_loss": 1.5, "stop_rate": 0.5, "samples": [
        {"id": "u1", "path": str(sample), "text": "hi", "target_audio": "/elsewhere/u1.wav"},
        {"id": "u2", "path": str(run / "samples" / "step_2" / "u2.wav"), "text": "gone"}]}
    (run / "eval.jsonl").write_text(json.dumps(evaluation) + "\n")
    return run


def test_curves_skip_a_half_written_line(tmp_path):
    run = _run(tmp_path)
    assert [(p["step"], p["loss"]) for p in runs.loss_curve(run)] == [(1, 2.5), (2, 2.0)]
    assert {(p["curve"], p["value"]) for p in runs.eval_curve(run)} == {("val_loss", 1.5), ("stop_rate", 0.5)}


def test_a_sample_is_listed_once_its_target_is_copied_into_the_run(tmp_path):
    run = _run(tmp_path)
    assert runs.samples(run) == []  # the report has not copied its target yet: not served from outside the run
    target = run / "samples" / "targets" / "u1.wav"
    target.parent.mkdir()
    target.write_bytes(b"RIFF")
    assert runs.samples(run) == [{"step": 2, "id": "u1", "text": "hi", "path": run / "samples/step_2/u1.wav",
                                  "target": target}]


def test_the_state_comes_from_the_lock_the_checkpoints_and_the_summary(tmp_path):
    run = _run(tmp_path)
    assert runs.list_runs(tmp_path / "runs") == [run]
    assert runs.state(run) == "not running, no checkpoint"
    (run / "checkpoints" / "step_00000005").mkdir(parents=True)
    assert runs.state(run) == "stopped at step_00000005 (resume continues it)"
    with open(run / LOCK_FILE, "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a live higgs-train process holds it
        assert runs.state(run) == "running"
    (run / "run_summary.json").write_text("{}")
    assert runs.state(run) == "finished"
