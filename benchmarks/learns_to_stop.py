"""The learns-to-stop runs (`tests/learns_to_stop_setups.py`) on every setup, learning rate and seed: full
fine-tuning, LoRA on an fp32 and a bf16 base, QLoRA with fp32 and bf16 compute, with the pass rate of their criteria
(>= 99% of the code frames, stream-EOS within 1 frame of each clip's end), the largest rise of the loss between two
steps, and each run's loss and gradient-norm curves.

    HIGGS_TRAIN_CACHE=/tmp/htcache .venv/bin/python benchmarks/learns_to_stop.py [--seeds 0 1 7] [--lrs 3e-3 5e-3]
        [--set KEY=VALUE ...] [--jobs 2] [--out learns_to_stop.json]

Each run is a fresh process with one thread (`--jobs` of them side by side). `--set` adds overrides to every run,
e.g. the optimizer before issue 35: `--set "optim.betas=[0.9,0.999]" optim.max_grad_norm=1.0`.
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
from learns_to_stop_setups import COMMON, LEARNING_RATES, SETUPS, passes  # noqa: E402

ONE_RUN = """
import json, sys
from higgs_train.config.files import compose_config
from higgs_train.train.recipe import train
summary = train(compose_config(json.loads(sys.argv[1])), sys.argv[2])
print("SUMMARY " + json.dumps(summary))
"""


def run(name: str, seed: int, lr: float, extra: list[str], folder: Path) -> dict:
    overrides = [*COMMON, *SETUPS[name], f"seed={seed}", f"optim.lr={lr}", *extra]
    run_dir = folder / f"{name}-{seed}-{lr}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", ONE_RUN, json.dumps(overrides), str(run_dir)], env=env,
                            capture_output=True, text=True, cwd=ROOT)
    line = next((line for line in result.stdout.splitlines() if line.startswith("SUMMARY ")), None)
    if line is None:
        return {"setup": name, "seed": seed, "lr": lr, "error": result.stderr[-500:]}
    summary = json.loads(line[len("SUMMARY "):])
    losses = [json.loads(record)["loss"] for record in (run_dir / "metrics.jsonl").read_text().splitlines()]
    norms = [json.loads(record)["grad_norm"] for record in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {"setup": name, "seed": seed, "lr": lr, "passed": passes(summary), "final_loss": summary["final_loss"],
            "max_grad_norm_after_step_40": max(norms[40:]), "losses": losses,
            "largest_rise": max(b - a for a, b in zip(losses, losses[1:])), "grad_norms": norms,
            "frame_match": [s["frame_match"] for s in summary["samples"]],
            "stop_offset": [s["frames"] - s["target_frames"] for s in summary["samples"]],
            "train_s": summary["train_s"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 7])
    parser.add_argument("--setups", nargs="+", default=list(SETUPS))
    parser.add_argument("--lrs", type=float, nargs="+", default=list(LEARNING_RATES))
    parser.add_argument("--set", nargs="*", default=[], dest="extra", help="more overrides for every run")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", default="learns_to_stop.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch, ThreadPoolExecutor(args.jobs) as pool:
        jobs = [pool.submit(run, name, seed, lr, args.extra, Path(scratch))
                for name in args.setups for lr in args.lrs for seed in args.seeds]
        results = [job.result() for job in jobs]
    Path(args.out).write_text(json.dumps(results, indent=1))
    print("| setup | lr | " + " | ".join(f"seed {s}" for s in args.seeds) + " | passed |")
    print("|---|---|" + "---|" * (len(args.seeds) + 1))
    for name in args.setups:
        for lr in args.lrs:
            mine = [r for r in results if r["setup"] == name and r["lr"] == lr]
            cells = [cell(r) for r in mine]
            print(f"| {name} | {lr} | " + " | ".join(cells)
                  + f" | {sum(bool(r.get('passed')) for r in mine)}/{len(mine)} |")


def cell(result: dict) -> str:
    """pass/FAIL, the final loss, the largest rise of the loss between two steps, worst frame match and stop error."""
    if "final_loss" not in result:
        return "error"
    return (("pass" if result["passed"] else "FAIL") + f", loss {result['final_loss']:.3f}, "
            f"rise {result['largest_rise']:.2f}, frames {min(result['frame_match']):.0%}, "
            f"stop {max(result['stop_offset'], key=abs):+d}")


if __name__ == "__main__":
    main()
