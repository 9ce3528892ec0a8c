"""DPO step time against SFT step time on the same tokens: a batch of pairs (chosen + rejected rows, padded
together) trained by `objective=sft` (both answers as targets) and by `objective=dpo` with a live reference (the
adapters switched off, one extra forward without gradient) and with a precomputed one. Mid-size random model of the
real layout (hidden 768, 8 layers, DualFFN, 8 x 1026 heads), LoRA on the audio path, fp32 on this CPU.

    .venv/bin/python benchmarks/dpo_step.py [--rounds 3] [--steps 4] [--frames 150]

The three are timed side by side in each round (forward, backward, optimizer step), after one untimed warm-up
step each; the ratios are reported per round, with the median and the spread.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from training import conversation, mid_size_model  # noqa: E402

from higgs_train.config.files import compose_config  # noqa: E402
from higgs_train.data.collator import ConversationCollator  # noqa: E402
from higgs_train.data.pair_table import PairCollator  # noqa: E402
from higgs_train.model.loss import sequence_logprobs  # noqa: E402
from higgs_train.model.peft_setup import apply_peft  # noqa: E402
from higgs_train.objectives import build_objective  # noqa: E402


class NoAccelerator:
    """What the objectives ask of Accelerate, for one process."""

    num_processes, is_main_process, device = 1, True, torch.device("cpu")

    def reduce(self, value, _):
        return value

    def unwrap_model(self, model):
        return model

    def autocast(self):
        import contextlib

        return contextlib.nullcontext()


def _pairs(count: int, frames: int) -> list[dict]:
    pairs = []
    for index in range(count):
        chosen, rejected = conversation(2 * index, frames), conversation(2 * index + 1, frames + 10)
        pairs.append({"chosen": chosen, "rejected": {**rejected, "messages": chosen["messages"][:-1] +
                                                     rejected["messages"][-1:]}})
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--pairs", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(0)
    tokenizer, config, model = mid_size_model()
    model = apply_peft(model, compose_config(["recipe=smoke", "peft=lora_audio", "peft.dropout=0.0"]).peft)
    model.train()
    collator = ConversationCollator(tokenizer, config)
    pairs = _pairs(args.pairs, args.frames)
    batch = PairCollator(collator)(pairs)
    with torch.no_grad():
        sums, counts = sequence_logprobs(model, batch, config)
    precomputed = {**batch, "reference_logps": torch.stack([sums.sum(-1), counts.sum(-1)], -1).reshape(-1, 2, 2)}
    accelerator = NoAccelerator()
    objectives = {
        "sft": (build_objective(compose_config(["recipe=smoke"]), accelerator, model, config), batch),
        "dpo, live reference": (build_objective(compose_config(["recipe=dpo_smoke"]), accelerator, model, config),
                                batch),
        "dpo, precomputed": (build_objective(compose_config(["recipe=dpo_smoke", "objective.reference=precomputed"]),
                                             accelerator, model, config), precomputed)}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)

    def step(objective, data) -> None:
        window = objective.prepare(model, [data])
        loss, _ = objective.loss(model, data, window)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for objective, data in objectives.values():
        step(objective, data)  # warm-up
    ratios = {name: [] for name in objectives if name != "sft"}
    for _ in range(args.rounds):
        seconds = {}
        for name, (objective, data) in objectives.items():
            started = time.perf_counter()
            for _ in range(args.steps):
                step(objective, data)
            seconds[name] = (time.perf_counter() - started) / args.steps
        for name in ratios:
            ratios[name].append(seconds[name] / seconds["sft"])
        print({name: round(value, 3) for name, value in seconds.items()}, flush=True)
    print(f"{args.pairs} pairs, {batch['input_ids'].numel()} positions a step ({int(batch['attention_mask'].sum())} "
          f"real), {args.rounds} rounds of {args.steps} steps")
    for name, found in ratios.items():
        print(f"| {name} / sft | {statistics.median(found):.2f}x ({min(found):.2f}-{max(found):.2f}) |")


if __name__ == "__main__":
    main()
