"""Preference tuning that fixes something, three runs each: from the base of tests/runaway_base.py (it does not
stop), DPO on pairs of its own judged samples and GRPO on groups of them (reward: stop + duration), measured on 4
held-out prompts of the same speakers (greedy): stop rate, duration ratio to the true clip, frame match.

    HIGGS_TRAIN_CACHE=/tmp/htcache .venv/bin/python benchmarks/preference_proof.py [--seeds 0 1 2] [--work DIR]
        [--only dpo|grpo] [--pair-temperature T] [--pairs=OPTION ...] [--dpo KEY=VALUE ...] [--grpo KEY=VALUE ...]
        [--keep-base]

The base is trained once (seed 0; `--keep-base` reuses the one already in --work); each run samples its pairs (or
groups) and tunes from its own seed. `--pairs` replaces the extra `higgs-prep pairs` options (default
`--with-greedy`; a bare `--pairs` samples every candidate); `--dpo` / `--grpo` add overrides to
tests/runaway_base.py's settings.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from runaway_base import BASE, DPO, GRPO, TOKEN_LIMIT, TUNING, data_paths, make_data, measure  # noqa: E402

from higgs_train.builtins.assets import ensure_builtin  # noqa: E402
from higgs_train.commands.export import export  # noqa: E402
from higgs_train.config.files import compose_config  # noqa: E402
from higgs_train.train.recipe import train  # noqa: E402


def _fresh_state() -> None:
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)


def _clear(*folders: Path) -> None:
    """A run's folders from an earlier invocation (with --keep-base), which training would refuse to replace."""
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


def dpo_run(work: Path, data: dict, base: str, seed: int, temperature: float, pair_options: list[str],
            extra: list[str]) -> dict:
    from data_prep.cli import _parser
    from data_prep.judged_pairs import build_pairs

    _clear(*(work / f"{name}-{seed}" for name in ("pairs", "dpo", "after-dpo")))
    started = time.time()
    info = build_pairs(_parser().parse_args([
        "pairs", "--model", base, "--data", str(data["prompts"]), "--out", str(work / f"pairs-{seed}"),
        "--samples-per-prompt", "8", "--temperature", str(temperature), "--max-new-tokens", str(TOKEN_LIMIT),
        "--ras-win-len", "0", "--seed", str(seed), *pair_options]))
    sampled = time.time() - started
    summary = train(compose_config([*DPO, *TUNING, f"seed={seed}", f"model.name_or_path={base}",
                                    f"data.pairs={work / f'pairs-{seed}'}", *extra]), work / f"dpo-{seed}")
    _fresh_state()
    after = measure(base, str(work / f"dpo-{seed}" / "adapter"), data["held_out"], work / f"after-dpo-{seed}")
    return {"pairs": info["pairs"], "steps": summary["steps"], "wall_s": round(time.time() - started, 1),
            "pairs_s": round(sampled, 1), "after": after}


def grpo_run(work: Path, data: dict, base: str, seed: int, extra: list[str]) -> dict:
    _clear(work / f"grpo-{seed}", work / f"after-grpo-{seed}")
    started = time.time()
    summary = train(compose_config([*GRPO, *TUNING, f"seed={seed}", f"model.name_or_path={base}",
                                    f"data.path={data['prompts']}", *extra]), work / f"grpo-{seed}")
    _fresh_state()
    shares = [json.loads(line)["generation_share"] for line in (work / f"grpo-{seed}" / "metrics.jsonl").read_text()
              .splitlines()]
    after = measure(base, str(work / f"grpo-{seed}" / "adapter"), data["held_out"], work / f"after-grpo-{seed}")
    return {"steps": summary["steps"], "wall_s": round(time.time() - started, 1),
            "generation_share": round(statistics.median(shares), 3), "after": after}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--work", type=Path, default=Path("/tmp/preference_proof"))
    parser.add_argument("--out", default="preference_proof.json")
    parser.add_argument("--only", choices=("dpo", "grpo"))
    parser.add_argument("--pair-temperature", type=float, default=1.0)
    parser.add_argument("--dpo", nargs="*", default=[])
    parser.add_argument("--grpo", nargs="*", default=[])
    parser.add_argument("--keep-base", action="store_true")
    parser.add_argument("--pairs", nargs="*", default=["--with-greedy"])
    args = parser.parse_args()
    torch.set_num_threads(2)  # the thread count decides whether the base runs on (BENCHMARKS.md)
    base = args.work / "base" / "export" / "merged"
    if not (args.keep_base and base.is_dir()):
        shutil.rmtree(args.work, ignore_errors=True)
        base_data = make_data(args.work, ensure_builtin("demo"))["base"]
        train(compose_config(["recipe=smoke", f"data.path={base_data}", *BASE]), args.work / "base")
        _fresh_state()
        export(args.work / "base", merge=True)
    data = data_paths(args.work)
    base = str(base)
    before = measure(base, None, data["held_out"], args.work / "before")
    runs = {}
    if args.only != "grpo":
        runs["dpo"] = [dpo_run(args.work, data, base, s, args.pair_temperature, args.pairs, args.dpo)
                       for s in args.seeds]
    if args.only != "dpo":
        runs["grpo"] = [grpo_run(args.work, data, base, s, args.grpo) for s in args.seeds]
    Path(args.out).write_text(json.dumps({"before": before, **runs}, indent=1))
    keys = ("stop_rate", "duration_ratio", "frame_match", "loop_share")
    print("| model | " + " | ".join(keys) + " | steps | wall s |")
    print("|---|" + "---|" * (len(keys) + 2))
    print("| base (runs on) | " + " | ".join(f"{before[k]:.3f}" for k in keys) + " | | |")
    for name, found in runs.items():
        cells = []
        for key in keys:
            values = [r["after"][key] for r in found]
            cells.append(f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})")
        walls = [r["wall_s"] for r in found]
        print(f"| {name}, median (range) of {len(found)} | " + " | ".join(cells) +
              f" | {found[0]['steps']} | {statistics.median(walls):.0f} ({min(walls):.0f}-{max(walls):.0f}) |")


if __name__ == "__main__":
    main()
