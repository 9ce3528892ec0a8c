"""A small real-speech dataset spoken by Debian's espeak-ng: two voices, short sentences, 24 kHz mono wav + JSONL.

It needs no download, so the smoke recipe and the tests train on actual speech offline.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from higgs_train.data.audio import TARGET_SAMPLE_RATE, load_audio
from higgs_train.data.tasks.layout import basic_messages
from higgs_train.runtime.progress import progress_bar

VOICES = {
    "alice": {"voice": "en-us+f3", "description": "feminine, American accent, calm"},
    "bruno": {"voice": "en-gb+m3", "description": "masculine, British accent, lively"},
}
SENTENCES = [
    "The sun rises in the east.",
    "Please close the door behind you.",
    "We walked along the quiet river.",
    "Coffee tastes better in the morning.",
    "The train leaves at seven tonight.",
    "She painted the fence bright blue.",
    "A small bird sang on the roof.",
    "Turn left at the next corner.",
    "The library opens at nine.",
    "He forgot his umbrella again.",
    "Bright stars filled the winter sky.",
    "Our garden needs more rain.",
    "The old clock ticked softly.",
    "Fresh bread smells wonderful.",
]
SCENE = "Audio is recorded from a quiet room."


def espeak_binary() -> str:
    binary = shutil.which("espeak-ng")
    if binary is None:
        raise SystemExit("espeak-ng is not installed: run `sudo apt-get install espeak-ng` (Debian/Ubuntu) and retry.")
    return binary


def conversation_row(row_id: str, speaker: str, text: str, audio_path: str) -> dict:
    return {"id": row_id, "speaker": speaker, "messages": basic_messages(text, {"path": audio_path}, SCENE)}


def write_demo_dataset(out: str | Path) -> Path:
    """Speak every sentence in every voice; write `clips/*.wav` (24 kHz mono) and `train.jsonl`, `speakers.json`."""
    binary = espeak_binary()
    out = Path(out)
    (out / "clips").mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        spoken = progress_bar([(speaker, spec, index, text) for speaker, spec in VOICES.items()
                       for index, text in enumerate(SENTENCES)], desc="speaking the demo data (espeak-ng)", unit="clip")
        for speaker, spec, index, text in spoken:
            raw = Path(scratch) / f"{speaker}_{index}.wav"
            subprocess.run([binary, "-v", spec["voice"], "-s", "165", "-w", str(raw), text], check=True)
            waveform = load_audio(raw)
            relative = f"clips/{speaker}_{index:02d}.wav"
            sf.write(out / relative, waveform, TARGET_SAMPLE_RATE, subtype="PCM_16")
            rows.append(conversation_row(f"{speaker}_{index:02d}", speaker, text, relative))
    with open(out / "train.jsonl", "w") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    speakers = {name: spec["description"] for name, spec in VOICES.items()}
    (out / "speakers.json").write_text(json.dumps(speakers, indent=2))
    (out / "eval.lst").write_text(eval_list(rows))
    write_demo_pairs(out, rows)
    return out


TRAILING_SILENCE_S = 1.2


def write_demo_pairs(out: Path, rows: list[dict]) -> None:
    """`pairs.jsonl` (`builtin:demo-pairs`): each clip chosen over itself followed by 1.2 s of silence (what users
    trim by hand from runaway generations), for preference tuning without a model to sample from."""
    lines = []
    for row in rows:
        clip = row["messages"][-1]["content"][0]["path"]
        waveform, rate = sf.read(out / clip, dtype="float32")
        trailing = clip.replace(".wav", "_trailing.wav")
        sf.write(out / trailing, np.concatenate([waveform, np.zeros(round(TRAILING_SILENCE_S * rate), np.float32)]),
                 rate, subtype="PCM_16")
        lines.append(json.dumps({"id": row["id"], "messages": row["messages"][:-1], "chosen": clip,
                                 "rejected": trailing}))
    (out / "pairs.jsonl").write_text("\n".join(lines) + "\n")


def eval_list(rows: list[dict]) -> str:
    """A Seed-TTS-eval style list over the demo (`builtin:demo-eval`): each sentence of each voice, prompted by the
    voice's next clip and its transcript, with its own clip as the ground truth."""
    lines = []
    for row in rows:
        same = [r for r in rows if r["speaker"] == row["speaker"]]
        prompt = same[(same.index(row) + 1) % len(same)]
        say = lambda r: r["messages"][-2]["content"][0]["text"]  # noqa: E731
        clip = lambda r: r["messages"][-1]["content"][0]["path"]  # noqa: E731
        lines.append("|".join((row["id"], say(prompt), clip(prompt), say(row), clip(row))))
    return "\n".join(lines) + "\n"
