"""The learns-to-stop test (`tests/test_learns_to_stop.py`) on more seeds: every setup it trains (full fine-tuning,
LoRA on an fp32 and a bf16 base, QLoRA with fp32 and bf16 compute), each on several seeds, with the pass rate of
its criteria (>= 99% of the code frames, stream-EOS within 1 frame of each clip's end) and each run's loss curve.

    HIGGS_TRAIN_CACHE=/tmp/htcache .venv/bin/python benchmarks/learns_to_stop.py [--seeds 0 1 7] [--old-defaults]
        [--jobs 2] [--out learns_to_stop.json]

Each run is a fresh process with one thread (`--jobs` of them side by side). `--old-defaults` trains as the
defaults did before the loss became the codebook mean and warmup was on: no warmup and a gradient clipped at 1.0 on
the codebook sum (0.125 on the mean, the same update), with the test's old LoRA learning rate of 5e-3.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from test_learns_to_stop import COMMON, SETUPS, passes  # noqa: E402

OLD_DEFAULTS = ["optim.warmup_steps=0", "optim.max_grad_norm=0.125"]
OLD_LORA_LR = "optim.lr=5e-3"
ONE_RUN = """
import json, sys
from higgs_train.config_files import compose_config
from higgs_train.train.recipe import train
summary = train(compose_config(json.loads(sys.argv[1])), sys.argv[2])
print("SUMMARY " + json.dumps(summary))
"""


def run(name: str, seed: int, old: bool, folder: Path) -> dict:
    overrides = [*COMMON, *SETUPS[name], f"seed={seed}"]
    if old:
        overrides += OLD_DEFAULTS + ([OLD_LORA_LR] if name != "full" else [])
    run_dir = folder / f"{name}-{seed}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", ONE_RUN, json.dumps(overrides), str(run_dir)], env=env,
                            capture_output=True, text=True, cwd=ROOT)
    line = next((line for line in result.stdout.splitlines() if line.startswith("SUMMARY ")), None)
    if line is None:
        return {"setup": name, "seed": seed, "error": result.stderr[-500:]}
    summary = json.loads(line[len("SUMMARY "):])
    losses = [json.loads(record)["loss"] for record in (run_dir / "metrics.jsonl").read_text().splitlines()]
    norms = [json.loads(record)["grad_norm"] for record in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {"setup": name, "seed": seed, "passed": passes(summary), "final_loss": summary["final_loss"],
            "max_grad_norm_after_step_40": max(norms[40:]), "losses": losses,
            "frame_match": [s["frame_match"] for s in summary["samples"]],
            "stop_offset": [s["frames"] - s["target_frames"] for s in summary["samples"]],
            "train_s": summary["train_s"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 7])
    parser.add_argument("--setups", nargs="+", default=list(SETUPS))
    parser.add_argument("--old-defaults", action="store_true")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", default="learns_to_stop.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch, ThreadPoolExecutor(args.jobs) as pool:
        jobs = [pool.submit(run, name, seed, args.old_defaults, Path(scratch)) for name in args.setups
                for seed in args.seeds]
        results = [job.result() for job in jobs]
    Path(args.out).write_text(json.dumps(results, indent=1))
    print("| setup | " + " | ".join(f"seed {s}" for s in args.seeds) + " | passed |")
    print("|---|" + "---|" * (len(args.seeds) + 1))
    for name in args.setups:
        mine = [r for r in results if r["setup"] == name]
        cells = [("pass" if r.get("passed") else "FAIL") + f", loss {r['final_loss']:.3f}, max |g| "
                 f"{r['max_grad_norm_after_step_40']:.1f}" if "final_loss" in r else "error" for r in mine]
        print(f"| {name} | " + " | ".join(cells) + f" | {sum(bool(r.get('passed')) for r in mine)}/{len(mine)} |")


if __name__ == "__main__":
    main()
