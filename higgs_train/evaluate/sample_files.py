"""The wav files generation writes: one per utterance, named after its id, and never in the place of a file the user
owns. An id is made safe for a file name (no separators, reserved or control characters, no leading dot, no name
too long), so two ids that differ only there would share a wav: a list or prompts file with such ids is refused
before any weight loads. Each wav carries a `higgs-train` tag in its header, which is how a later `higgs-generate`
knows a file it may overwrite from one it may not."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import soundfile as sf

from higgs_train.runtime.errors import UserError

TAG = "higgs-train"
UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]')
MAX_NAME = 120  # characters of the id kept in a file name; a longer id is cut and told apart by a hash


class OutputError(UserError):
    """An output would replace a file the tool did not write, or two outputs would share one file."""


def sample_file_name(utterance_id) -> str:
    """`<id>.wav`, the id made safe for any file system."""
    text = str(utterance_id)
    name = UNSAFE.sub("_", text).strip()
    name = "_" + name[1:] if name.startswith(".") else name
    if len(name) > MAX_NAME:
        name = f"{name[:MAX_NAME]}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"
    return f"{name or '_'}.wav"


def check_distinct_names(utterances: list[dict], source: str) -> None:
    """Refuses ids that would write one wav (equal once made safe, or but for letter case, which some file systems
    ignore), naming both."""
    seen: dict[str, str] = {}
    for utterance in utterances:
        name = sample_file_name(utterance["id"]).casefold()
        if name in seen:
            raise OutputError(f"{source}: utterance ids {seen[name]!r} and {utterance['id']!r} would write one file "
                              f"({sample_file_name(utterance['id'])}: characters unsafe in file names become _, and "
                              "some file systems ignore letter case); give each utterance an id of its own")
        seen[name] = utterance["id"]


def write_wav(path: Path, waveform: np.ndarray, rate: int) -> None:
    """A wav with our tag in its header (what `check_overwritable` looks for)."""
    with sf.SoundFile(path, "w", rate, 1, subtype="PCM_16") as handle:
        handle.software = TAG
        handle.write(waveform)


def written_by_us(path: Path) -> bool:
    try:
        with sf.SoundFile(path) as handle:
            return handle.software.startswith(TAG)
    except Exception:  # noqa: BLE001 - not audio soundfile reads: not ours
        return False


def check_overwritable(targets: list[Path], inputs: list[Path], setting: str) -> None:
    """Refuses, before any work, a target that is one of this command's inputs, a folder, or a file that an earlier
    generation of ours did not write; `setting` is the option to change."""
    read = {Path(p).resolve() for p in inputs}
    for target in targets:
        target = Path(target)
        if target.resolve() in read:
            raise OutputError(f"{setting} would write {target}, which this command reads as its input; choose "
                              f"another {setting}")
        if target.is_dir():
            raise OutputError(f"{target} is a folder, and {setting} names the wav to write; give a file name "
                              "ending in .wav")
        if target.exists() and not written_by_us(target):
            raise OutputError(f"{target} exists and higgs-train did not write it, and it never overwrites what is "
                              f"not its own; choose another {setting}, or move the file away")
