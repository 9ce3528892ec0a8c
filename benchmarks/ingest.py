"""`higgs-prep ingest` speed and memory on this CPU: silero-vad + a tiny random Whisper (the Transformers code path;
a real Whisper's cost is its own and is not measured here).

    PYTHONPATH=. .venv/bin/python benchmarks/ingest.py [--long-minutes 120]

1. Real-time factor (wall seconds per second of audio), one process and two processes (RANK/WORLD_SIZE as torchrun
   sets them), side by side in one run on the same four recordings.
2. Peak memory (each run's own peak RSS) ingesting a 10-minute recording and a long one (2 hours by default), made
   here by repeating the espeak-ng recording of the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from higgs_train.builtins.long_recording import make_recording  # noqa: E402
from higgs_train.builtins.tiny_whisper import write_tiny_whisper  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# Runs the command line in a child that reports its own peak RSS (KiB on Linux) on its last line.
CHILD = ("import resource, sys; from data_prep.cli import main\n"
         "try:\n    main(sys.argv[1:])\nfinally:\n"
         "    print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")


def _ingest(source: Path, out: Path, whisper: Path, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CHILD, "ingest", "--data", str(source), "--out", str(out),
                             "--asr", str(whisper), "--limit", "asr_confidence=0"], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


def _finish(process: subprocess.Popen) -> int:
    stdout, _ = process.communicate()
    assert process.returncode == 0, stdout[-2000:]
    return int(stdout.strip().splitlines()[-1].split()[-1])


def _repeat(source: Path, out: Path, minutes: float) -> Path:
    """`source` written again and again into `out` until it lasts `minutes`, block by block, each time with other
    faint noise, so no clip's audio repeats (a repeated clip would be transcribed once: work is keyed by content)."""
    info = sf.info(str(source))
    with sf.SoundFile(str(out), "w", info.samplerate, 1, subtype="PCM_16") as handle:
        repeat = 0
        while handle.frames < minutes * 60 * info.samplerate:
            for block in sf.blocks(str(source), blocksize=info.samplerate * 30, dtype="float32"):
                handle.write(_distinct(block, repeat))
                repeat += 1
    return out


def _distinct(samples, seed: int):
    """The samples with faint noise (-70 dBFS) of their own: other audio after loudness normalisation too (a mere
    gain would be normalised away)."""
    import numpy as np

    return samples + np.random.default_rng(seed).normal(0, 3e-4, len(samples)).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--long-minutes", type=float, default=120.0)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="ingest-bench-"))
    whisper = write_tiny_whisper(scratch / "whisper")
    base = make_recording(scratch / "base.wav").path
    audio = scratch / "four"
    audio.mkdir()
    samples, rate = sf.read(str(base), dtype="float32")
    for index in range(4):  # the same work for each process, but four contents (work is keyed by content)
        sf.write(str(audio / f"{index}.wav"), _distinct(samples, index), rate, subtype="PCM_16")
    seconds = 4 * sf.info(str(base)).duration
    started = time.perf_counter()
    _finish(_ingest(audio, scratch / "one" / "out", whisper))
    one = time.perf_counter() - started
    started = time.perf_counter()
    pair = [_ingest(audio, scratch / "two" / "out", whisper, {"RANK": str(r), "WORLD_SIZE": "2"}) for r in range(2)]
    for process in pair:
        _finish(process)
    two = time.perf_counter() - started
    print(f"{seconds:.0f} s of audio in 4 recordings: one process {one:.1f} s (RTF {one / seconds:.3f}), two "
          f"processes {two:.1f} s (RTF {two / seconds:.3f}), speed-up {one / two:.2f}x")

    peaks = {}
    for minutes in (10, args.long_minutes):
        folder = scratch / f"long{minutes:g}"
        folder.mkdir()
        _repeat(base, folder / "recording.wav", minutes)
        started = time.perf_counter()
        peaks[minutes] = _finish(_ingest(folder, scratch / f"out{minutes:g}", whisper)) / 1024
        wall = time.perf_counter() - started
        report = json.loads((scratch / f"out{minutes:g}" / "report.json").read_text())
        print(f"{minutes:g} min recording: peak RSS {peaks[minutes]:.0f} MiB, {wall:.0f} s (RTF "
              f"{wall / (minutes * 60):.3f}), {report['kept']} clips kept, {report['rejected']} rejected")
    print(f"peak memory {args.long_minutes:g} min / 10 min: {peaks[args.long_minutes] / peaks[10]:.2f}x")
    shutil.rmtree(scratch)


if __name__ == "__main__":
    main()
