"""The labels teach stopping: a tiny model fully fine-tuned on 4 demo clips regenerates each clip and stops on time."""

import copy
import subprocess
import sys

from transformers import AutoProcessor, HiggsAudioV2ForConditionalGeneration

from higgs_train.data.audio_codes import attach_codes
from higgs_train.data.collator import ConversationCollator
from higgs_train.evaluate.samples import generate_codes


def test_full_finetune_reproduces_clips_and_stops_within_one_frame(tmp_path, tiny_checkpoint, demo_dir, demo_rows,
                                                                     eval_cfg_factory):
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "higgs_train.cli", "recipe=smoke", "peft=none", "data.max_examples=4",
         "trainer.max_steps=400", "optim.lr=2e-3", "optim.scheduler=cosine", "eval.num_samples=1", "trainer.log_every_n_steps=100",
         f"hydra.run.dir={run_dir}"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]

    model = HiggsAudioV2ForConditionalGeneration.from_pretrained(run_dir / "model")  # full FT saves a checkpoint
    processor = AutoProcessor.from_pretrained(run_dir / "model")
    rows = copy.deepcopy(demo_rows[:4])
    attach_codes(rows, processor.audio_tokenizer, show_progress=False)
    collator = ConversationCollator(processor.tokenizer, model.config)
    # Greedy, without the repetition-aware resampling (it samples), one prompt at a time (no left padding).
    greedy = eval_cfg_factory(max_new_tokens=120, ras_win_len=None)
    for row in rows:
        [(codes, stopped)] = generate_codes(model, collator, [row], greedy)
        target = row["messages"][-1]["content"][0]["codes"]
        assert stopped, f"{row['id']} never emitted stream-EOS"
        assert abs(codes.shape[1] - target.shape[1]) <= 1, (row["id"], codes.shape[1], target.shape[1])
        n = min(codes.shape[1], target.shape[1])
        frame_match = (codes[:, :n] == target[:, :n]).all(dim=0).float().mean().item()
        assert frame_match >= 0.95, (row["id"], frame_match)  # issue 5 raises this bar to 0.99
