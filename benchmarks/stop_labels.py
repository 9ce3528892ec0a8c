"""Does the model learn to stop? Our labels (one stream-EOS target per codebook) vs the processor's
`apply_chat_template(..., output_labels=True)` labels (every stream-EOS set to -100), same everything else.

    HIGGS_TRAIN_CACHE=/tmp/htcache .venv/bin/python benchmarks/stop_labels.py

Tiny checkpoint, full fine-tuning on 4 espeak-ng demo clips, 400 steps at lr 2e-3, greedy generation from each
clip's prompt with up to 3x the clip's length.
"""

from __future__ import annotations

import copy
import os

import torch
from omegaconf import OmegaConf
from transformers import AutoConfig, HiggsAudioV2ForConditionalGeneration

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from higgs_train.builtins.assets import ensure_builtin  # noqa: E402
from higgs_train.data.audio import load_audio  # noqa: E402
from higgs_train.data.audio_codes import attach_codes  # noqa: E402
from higgs_train.data.collator import ConversationCollator  # noqa: E402
from higgs_train.data.conversations import load_rows  # noqa: E402
from higgs_train.evaluate.samples import generate_codes  # noqa: E402
from higgs_train.model.loading import load_processor  # noqa: E402
from higgs_train.model.loss import audio_loss_terms  # noqa: E402

STEPS, LR = 400, 2e-3


def processor_batch(processor, conversations) -> dict:
    messages = copy.deepcopy([c["messages"] for c in conversations])
    for conversation in messages:
        for message in conversation:
            for item in message["content"]:
                item.pop("codes", None)
                if item["type"] == "audio":
                    item["audio"] = load_audio(item.pop("path"))
    return dict(processor.apply_chat_template(messages, tokenize=True, return_dict=True, return_tensors="pt",
                                              processor_kwargs={"output_labels": True}))


def train_and_listen(checkpoint, batch, collator, conversations) -> dict:
    torch.manual_seed(0)
    model = HiggsAudioV2ForConditionalGeneration.from_pretrained(checkpoint, attn_implementation="sdpa")
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR)
    for _ in range(STEPS):
        terms = audio_loss_terms(model, batch, model.config)
        (terms.sums / terms.counts.clamp(min=1)).sum().backward()
        optimizer.step()
        optimizer.zero_grad()
    targets = [c["messages"][-1]["content"][-1]["codes"].shape[1] for c in conversations]
    eval_cfg = OmegaConf.create({"max_new_tokens": 3 * max(targets) + 8, "do_sample": False, "temperature": 1.0,
                                 "ras_win_len": None, "ras_win_max_num_repeat": 2})
    generated = generate_codes(model, collator, conversations, eval_cfg)
    return {"stop_rate": sum(stopped for _, stopped in generated) / len(generated),
            "frames": [codes.shape[1] for codes, _ in generated], "target_frames": targets}


def main() -> None:
    torch.set_num_threads(2)
    checkpoint, demo = ensure_builtin("tiny"), ensure_builtin("demo")
    processor = load_processor(str(checkpoint))
    conversations = load_rows(demo / "train.jsonl", max_examples=4)
    attach_codes(conversations, processor.audio_tokenizer)
    collator = ConversationCollator(processor.tokenizer, AutoConfig.from_pretrained(checkpoint))
    print("| labels | stop rate | generated frames | clip frames |")
    print("|---|---|---|---|")
    for name, batch in (("ours (one stream-EOS per codebook)", collator(conversations)),
                        ("processor `output_labels=True`", processor_batch(processor, conversations))):
        result = train_and_listen(checkpoint, batch, collator, conversations)
        print(f"| {name} | {result['stop_rate']:.0%} | {result['frames']} | {result['target_frames']} |")


if __name__ == "__main__":
    main()
