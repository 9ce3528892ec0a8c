"""A base that runs on, for the preference-tuning proof (tests/test_preference_proof.py and benchmarks/
preference_proof.py, both on 2 threads: whether it runs on depends on the thread count). LoRA-tuned on 8 demo clips,
each seen once as it is and three times spoken twice over, so at a clip's end it continues more often than it stops.
Pairs and groups are sampled for 20 demo prompts (those 8 among them); the evaluation is on 8 held-out prompts of the
same two speakers, laid out as training lays them out."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import soundfile as sf

TRAIN_PER_SPEAKER, PROMPTS_PER_SPEAKER, HELD_OUT_PER_SPEAKER, TWICE = 4, 10, 4, 3
TOKEN_LIMIT = 100  # delayed steps an answer may take: a clip spoken twice (~90-110 frames) does not fit
BASE = ["trainer.batch_size=4", "trainer.max_steps=400", "trainer.save_every_n_steps=null", "eval.num_samples=0",
        "eval.every_n_steps=null", "eval.val_size=0", "peft=lora_audio", "peft.r=16", "peft.alpha=32",
        "peft.modules_to_save=[audio_lm_head]", "trainer.log_every_n_steps=50",
        "optim.betas=[0.9,0.999]", "optim.max_grad_norm=1.0"]  # the optimizer the runaway base was measured with
TUNING = ["trainer.precision=fp32", "trainer.device=cpu", "eval.every_n_steps=null", "eval.num_samples=0",
          "eval.val_size=0", "trainer.save_every_n_steps=null", "peft.modules_to_save=[audio_lm_head]",
          "trainer.log_every_n_steps=5"]
DPO = ["recipe=dpo_lora", "optim.lr=1e-3", "objective.beta=0.01", "objective.sft_weight=2.0", "trainer.max_steps=60"]
GRPO = ["recipe=grpo_lora", "task=smart_voice", "optim.lr=2e-3", "optim.max_grad_norm=1.0",
        "objective.samples_per_prompt=4", "objective.temperature=0.7", f"objective.max_new_tokens={TOKEN_LIMIT}",
        "objective.kl_beta=0.04",
        "objective.rewards.duration_error=2.0", "objective.rewards.loop_share=2.0", "trainer.max_steps=80"]


FOLDERS = {"base": "base_data", "prompts": "prompts", "held_out": "held_out"}


def _rows_folder(folder: Path, rows: list[dict], demo: Path, twice: int = 0) -> Path:
    """A conversation JSONL of `rows` (clips copied), each also `twice` times spoken twice over, + speakers.json."""
    (folder / "clips").mkdir(parents=True)
    written = []
    for row in rows:
        clip = row["messages"][-1]["content"][0]["path"]
        waveform, rate = sf.read(demo / clip, dtype="float32")
        sf.write(folder / clip, waveform, rate)
        written.append(row)
        for take in range(twice):
            doubled = clip.replace(".wav", "_twice.wav")
            sf.write(folder / doubled, np.concatenate([waveform, waveform]), rate)
            copy = json.loads(json.dumps(row))
            copy["id"], copy["messages"][-1]["content"][0]["path"] = f"{row['id']}-twice{take}", doubled
            written.append(copy)
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in written))
    shutil.copy(demo / "speakers.json", folder / "speakers.json")
    return folder / "train.jsonl"


def make_data(work: Path, demo: Path) -> dict[str, Path]:
    """The base's training data, the prompts pairs and groups are sampled for, and the held-out prompts."""
    rows = [json.loads(line) for line in (demo / "train.jsonl").read_text().splitlines()]
    by_speaker = {s: [r for r in rows if r["speaker"] == s] for s in sorted({r["speaker"] for r in rows})}
    train = [r for group in by_speaker.values() for r in group[:TRAIN_PER_SPEAKER]]
    prompts = [r for group in by_speaker.values() for r in group[:PROMPTS_PER_SPEAKER]]
    held_out = [r for group in by_speaker.values() for r in group[-HELD_OUT_PER_SPEAKER:]]
    _rows_folder(work / FOLDERS["base"], train, demo, TWICE)
    _rows_folder(work / FOLDERS["prompts"], prompts, demo)
    _rows_folder(work / FOLDERS["held_out"], held_out, demo)
    return data_paths(work)


def data_paths(work: Path) -> dict[str, Path]:
    """The conversation files `make_data` wrote under `work`."""
    return {name: work / folder / "train.jsonl" for name, folder in FOLDERS.items()}


def measure(model: str, adapter: str | None, data: Path, out: Path) -> dict:
    """Greedy answers to the prompts of `data` (smart_voice, as training laid them out, each with its clip):
    the registry's summary (stop rate, duration ratio against the clip, frame match, ...)."""
    import torch
    from omegaconf import OmegaConf

    from higgs_train.commands.eval import evaluate_model
    from higgs_train.config.files import CONFIG_DIR
    from higgs_train.data.collator import ConversationCollator
    from higgs_train.data.loader import task_conversations
    from higgs_train.evaluate.judges import Judges
    from higgs_train.evaluate.metrics import summarize
    from higgs_train.model.loading import load_for_inference

    loaded, processor = load_for_inference(model, adapter, torch.device("cpu"))
    collator = ConversationCollator(processor.tokenizer, loaded.config)
    data_cfg = OmegaConf.merge(OmegaConf.load(CONFIG_DIR / "data" / "jsonl.yaml"), {"path": str(data)})
    dataset, _ = task_conversations(data_cfg.path, data_cfg, "smart_voice", 0, collator, processor.audio_tokenizer)
    eval_cfg = OmegaConf.merge(OmegaConf.load(CONFIG_DIR / "eval" / "default.yaml"),
                               {"max_new_tokens": TOKEN_LIMIT, "batch_size": 4})
    records = evaluate_model(loaded, processor, [dataset[i] for i in range(len(dataset))], eval_cfg, out, Judges())
    return summarize(records)
