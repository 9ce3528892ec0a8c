"""Training start-up and data-side memory at 2,000 / 20,000 / 200,000 rows: the training table (this checkout)
against the in-memory loader it replaced (a checkout of 07560ca), side by side on the same datasets.

Each dataset is a `higgs-prep convert` folder of N voice-clone rows, 200 rows per speaker; the rows share the demo
set's 28 clips (row i speaks clip i % 28), so 200,000 rows fit any disk. Each is encoded once (`higgs-prep encode`).
- start-up: process start to the first optimizer step of `higgs-train` (task voice_clone, tiny checkpoint, one
  step, no evaluation): the time from launching the process to the write of the step's metrics line;
- data-side peak RSS: a fresh process loads the processor, resets its peak RSS (/proc/self/clear_refs), builds the
  training data and collates the first batch; the figure is the peak minus the RSS before.
The new loader's first run on a dataset builds the table and measures the conversations; three such first runs
(the table removed before each) are reported on their own, and the three timed runs after them read the table.

    git worktree add /tmp/baseline 07560ca
    HIGGS_TRAIN_CACHE=/tmp/htcache .venv/bin/python benchmarks/startup.py --baseline /tmp/baseline
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZES = (2_000, 20_000, 200_000)
ROWS_PER_SPEAKER = 200
RUNS = 3


def write_dataset(folder: Path, size: int, demo: Path) -> Path:
    """A prepared dataset (the layout `higgs-prep convert` writes) of `size` rows over the demo clips."""
    import datasets

    from higgs_train.data.conversations import load_rows

    if (folder / "state.json").is_file():
        return folder
    demo_rows = load_rows(demo / "train.jsonl")
    (folder / "clips").mkdir(parents=True, exist_ok=True)
    for row in demo_rows:
        shutil.copy(row["messages"][-1]["content"][0]["path"], folder / "clips")
    records = []
    for index in range(size):
        template = demo_rows[index % len(demo_rows)]
        messages = json.loads(json.dumps(template["messages"]))
        clip = Path(messages[-1]["content"][0]["path"]).name
        messages[-1]["content"][0] = {"type": "audio", "path": f"clips/{clip}"}
        records.append({"id": f"row{index:06d}", "speaker": f"speaker{index // ROWS_PER_SPEAKER:04d}",
                        "text": messages[2]["content"][0]["text"], "audio": f"clips/{clip}", "seconds": 2.0,
                        "messages": json.dumps(messages)})
    datasets.Dataset.from_list(records).save_to_disk(str(folder))
    subprocess.run([sys.executable, "-m", "data_prep.cli", "encode", "--data", str(folder), "--model",
                    "builtin:tiny"], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return folder


def _env(checkout: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(checkout), "HF_HUB_OFFLINE": "1"}


def time_to_first_step(checkout: Path, data: Path, run_dir: Path) -> float:
    shutil.rmtree(run_dir, ignore_errors=True)
    command = [sys.executable, "-m", "higgs_train.commands.train", "recipe=smoke", "task=voice_clone",
               f"data.path={data}",
               "trainer.max_steps=1", "eval.val_size=0", "eval.num_samples=0", "eval.every_n_steps=null",
               f"hydra.run.dir={run_dir}"]
    started = time.time()
    subprocess.run(command, check=True, cwd=checkout, env=_env(checkout), stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return os.stat(run_dir / "metrics.jsonl").st_mtime - started


def data_side_memory(checkout: Path, data: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", str(data)], check=True, cwd=checkout,
                         env=_env(checkout), capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def child(data: str) -> None:
    """Runs in the checkout under test: data setup alone, its peak RSS above what was there before."""
    from transformers import AutoConfig

    import higgs_train
    from higgs_train.builtins import assets
    from higgs_train.config.files import compose_config
    from higgs_train.data.loader import build_training_data
    from higgs_train.model.loading import load_processor

    cfg = compose_config(["recipe=smoke", "task=voice_clone", f"data.path={data}", "eval.val_size=0"])
    model = assets.resolve(cfg.model.name_or_path)
    processor = load_processor(model)
    model_config = AutoConfig.from_pretrained(model)
    Path("/proc/self/clear_refs").write_text("5")  # peak RSS := RSS now
    before = _status_kib("VmRSS")
    started = time.time()
    training = build_training_data(cfg, data, processor, model_config)
    next(iter(training.dataloader))
    print(json.dumps({"package": higgs_train.__file__, "seconds": round(time.time() - started, 2),
                      "peak_mb": round((_status_kib("VmHWM") - before) / 1024, 1)}))


def _summary(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline", type=Path, help="a checkout of the in-memory loader (07560ca)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, default=Path("/tmp/startup-bench"))
    parser.add_argument("--sizes", type=int, nargs="*", default=list(SIZES))
    args = parser.parse_args()
    if args.child:
        return child(args.child)
    from higgs_train.builtins.assets import ensure_builtin

    demo = ensure_builtin("demo")
    loaders = {"training table": ROOT, **({"in-memory (07560ca)": args.baseline} if args.baseline else {})}
    results = {}
    for size in args.sizes:
        data = write_dataset(args.work / f"rows-{size}", size, demo)
        for name, checkout in loaders.items():
            first = None
            if checkout == ROOT:  # a first run builds the table and measures the conversations
                first = []
                for _ in range(RUNS):
                    for table in (data / "codes").glob("*/table-*"):
                        shutil.rmtree(table)
                    first.append(time_to_first_step(checkout, data, args.work / "run"))
            seconds = [time_to_first_step(checkout, data, args.work / "run") for _ in range(RUNS)]
            memory = [data_side_memory(checkout, data) for _ in range(RUNS)]
            assert all(Path(m["package"]).is_relative_to(checkout) for m in memory), memory
            results[(size, name)] = (first, seconds, [m["peak_mb"] for m in memory])
            print(f"{size} rows, {name}: first start {first and _summary(first)} s; start-up "
                  f"{_summary(seconds)} s; data-side peak RSS {_summary([m['peak_mb'] for m in memory])} MB",
                  flush=True)
    print("\n| rows | loader | start-up s, median (range) | vs 2,000 rows | data-side peak RSS MB | first start s |")
    print("|---|---|---|---|---|---|")
    for (size, name), (first, seconds, memory) in results.items():
        base = statistics.median(results[(args.sizes[0], name)][1])
        print(f"| {size:,} | {name} | {_summary(seconds)} | {statistics.median(seconds) / base:.2f}x | "
              f"{_summary(memory)} | {'-' if first is None else _summary(first)} |")


if __name__ == "__main__":
    main()
