"""Scaling out by configuration alone: DDP, two "nodes" and DeepSpeed ZeRO-2 on this CPU, and loss normalisation
that makes accumulation and data parallelism give the one-big-batch result."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from transformers import HiggsAudioV2ForConditionalGeneration

from higgs_train.launch import LAUNCH_DIR
from higgs_train.train.recipe import train

pytestmark = pytest.mark.slow  # end-to-end runs in subprocesses

ROOT = Path(__file__).resolve().parent.parent
LAUNCH = [sys.executable, "-m", "accelerate.commands.launch", "--mixed_precision", "no", "--dynamo_backend", "no"]
ACCELERATE = [*LAUNCH, "--num_machines", "1"]
# 16 conversations of several lengths, 6 steps with a cosine schedule: per-batch target counts differ, so a mean of
# per-batch means would not match the big batch.
RUN = ["recipe=smoke", "trainer.max_steps=6", "eval.num_samples=0", "trainer.save_every_n_steps=3",
       "data.max_examples=16", "optim.scheduler=cosine", "optim.warmup_steps=2"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _losses(run_dir):
    return [json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _eval(run_dir) -> dict:
    return json.loads((run_dir / "eval.jsonl").read_text().splitlines()[-1])


def _run(command, env=None):
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT,
                            env={**os.environ, **(env or {})})
    assert result.returncode == 0, result.stderr[-4000:]
    assert "terminate called" not in result.stderr
    return result


@pytest.fixture(scope="module")
def one_process(tmp_path_factory, tiny_checkpoint, demo_dir):
    """The reference: one process, batches of 2, accumulating 2 per step (global batch 4)."""
    run_dir = tmp_path_factory.mktemp("dist") / "one"
    _run([sys.executable, "-m", "higgs_train.commands.train", *RUN, "trainer.batch_size=2",
          "trainer.gradient_accumulation_steps=2", f"hydra.run.dir={run_dir}"])
    return run_dir


def test_two_ddp_processes_give_the_one_process_loss_curve(one_process, tmp_path):
    run_dir = tmp_path / "ddp"
    result = _run([*ACCELERATE, "--multi_gpu", "--num_processes", "2", "--main_process_port", str(_free_port()),
                   "-m", "higgs_train.commands.train", *RUN, "trainer.batch_size=2", "trainer.device=cpu",
                   f"hydra.run.dir={run_dir}"])
    assert "2 process(es)" in result.stdout
    assert _losses(run_dir) == pytest.approx(_losses(one_process), rel=1e-4)
    # The validation batches are shared out between the processes and their sums added: the one-process numbers.
    assert _eval(run_dir)["val_loss_per_codebook"] == pytest.approx(_eval(one_process)["val_loss_per_codebook"],
                                                                    rel=1e-4)
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step_00000003", "step_00000006"]
    assert sorted(p.name for p in (run_dir / "checkpoints" / "step_00000006").glob("rng_*.json")) == \
        ["rng_0.json", "rng_1.json"]


def test_two_nodes_on_localhost_complete_a_run(one_process, tmp_path):
    run_dir, port = tmp_path / "nodes", _free_port()
    nodes = [subprocess.Popen([*LAUNCH, "--multi_gpu", "--num_machines", "2", "--num_processes", "2", "--machine_rank",
                               str(rank), "--main_process_ip", "127.0.0.1", "--main_process_port", str(port),
                               "-m", "higgs_train.commands.train", *RUN, "trainer.batch_size=2", "trainer.device=cpu",
                               f"hydra.run.dir={run_dir}"],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for rank in (0, 1)]
    outputs = [node.communicate(timeout=600) for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], [err[-2000:] for _, err in outputs]
    assert "higgs-train: done" in outputs[0][0] and "higgs-train: done" not in outputs[1][0]
    assert _losses(run_dir) == pytest.approx(_losses(one_process), rel=1e-4)
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()


@pytest.mark.parametrize("stage", ["zero2", "zero3"])
def test_deepspeed_on_cpu_trains_and_its_adapter_loads_back(stage, one_process, tmp_path, tiny_checkpoint):
    """ZeRO-3 shards the weights too: the audio tokenizer must load whole, evaluation runs on every process and the
    adapter is gathered for saving."""
    pytest.importorskip("deepspeed")
    run_dir = tmp_path / stage
    result = _run([*ACCELERATE, "--use_deepspeed", "--deepspeed_config_file", str(LAUNCH_DIR / f"{stage}.json"),
                   "--num_processes", "2", "--main_process_port", str(_free_port()), "-m",
                       "higgs_train.commands.train", *RUN,
                   "trainer.batch_size=2", "trainer.device=auto", f"hydra.run.dir={run_dir}", "eval.num_samples=2",
                   "eval.max_new_tokens=20"],
                  env={"DS_ACCELERATOR": "cpu"})
    assert "2 process(es)" in result.stdout
    assert _losses(run_dir) == pytest.approx(_losses(one_process), rel=1e-4)
    assert _eval(run_dir)["val_loss"] == pytest.approx(_eval(one_process)["val_loss"], rel=1e-4)
    assert len(list((run_dir / "samples" / "step_6").glob("*.wav"))) == 2
    base = HiggsAudioV2ForConditionalGeneration.from_pretrained(tiny_checkpoint)
    inputs = {"input_ids": torch.tensor([[1, 2, 3, 4]])}
    with torch.no_grad():
        before = base(**inputs).logits
        tuned = PeftModel.from_pretrained(base, run_dir / "adapter")
        assert not torch.allclose(tuned(**inputs).logits, before, atol=1e-5)
    reference = PeftModel.from_pretrained(HiggsAudioV2ForConditionalGeneration.from_pretrained(tiny_checkpoint),
                                          one_process / "adapter")
    ours = dict(tuned.named_parameters())
    for name, weight in reference.named_parameters():
        if "lora_" in name:
            torch.testing.assert_close(ours[name], weight, rtol=1e-3, atol=1e-5)


def test_accumulated_loss_equals_the_big_batch_loss(compose_config, tmp_path, demo_dir):
    small = train(compose_config(*RUN, "trainer.batch_size=2", "trainer.gradient_accumulation_steps=2",
                                 "trainer.log_every_n_steps=1"), tmp_path / "accumulated")
    big = train(compose_config(*RUN, "trainer.batch_size=4", "trainer.log_every_n_steps=1"), tmp_path / "big")
    assert _losses(tmp_path / "accumulated") == pytest.approx(_losses(tmp_path / "big"), rel=1e-5)
    assert small["final_loss"] == pytest.approx(big["final_loss"], rel=1e-5)


def test_two_ddp_processes_train_dpo_as_one_process_does(tmp_path, demo_dir):
    """The objective seam's totals are global: a pair a process, two processes, give the two-pair batch's steps."""
    run = ["recipe=dpo_smoke", "trainer.max_steps=4", "eval.num_samples=0", "eval.every_n_steps=null",
           "trainer.save_every_n_steps=null", "trainer.device=cpu"]
    one, ddp = tmp_path / "one", tmp_path / "ddp"
    _run([sys.executable, "-m", "higgs_train.commands.train", *run, "trainer.batch_size=2", f"hydra.run.dir={one}"])
    _run([*ACCELERATE, "--multi_gpu", "--num_processes", "2", "--main_process_port", str(_free_port()), "-m",
          "higgs_train.commands.train", *run, "trainer.batch_size=1", f"hydra.run.dir={ddp}"])
    records = [[json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
               for run_dir in (one, ddp)]
    for key in ("loss", "reward_margin", "preference_accuracy"):  # 1e-3: two pairs padded together, or one alone
        assert [r[key] for r in records[1]] == pytest.approx([r[key] for r in records[0]], rel=1e-3, abs=1e-6), key
