"""Checks of the files `higgs-eval` lists and `higgs-generate` prompts name, before any weight loads: text read as
UTF-8 (a leading byte-order mark dropped, other bytes named by line), every prompt and target clip one the model can
be given (it decodes, is finite, not silent, not too short), and every bad line counted and listed in one refusal:
an evaluation scores every line of its list or none, so no utterance is scored on a broken clip or left out unsaid."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path

from higgs_train.data.audio_checks import BadRow, checked_waveform, decode
from higgs_train.data.conversations import DataError

MIN_CLIP_SECONDS = 0.3  # as data.min_seconds: a shorter prompt clip holds too little voice to copy
SHOWN = 3  # bad lines quoted in a refusal; the rest are counted


def text_lines(path: Path) -> Iterator[tuple[int, str, str]]:
    """(line number, "file:line", text) of each line; a byte-order mark is dropped, a non-UTF-8 line refused."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            where = f"{path}:{number}"
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as error:
                raise DataError(f"{where}: not UTF-8 text (byte 0x{raw[error.start]:02x} at column "
                                f"{error.start + 1}); re-save the file as UTF-8") from None
            yield number, where, line.rstrip("\r\n")


def checked_clip(path: str, folder: Path, where: str, field: str) -> str:
    """The clip's absolute path, once it is known to decode to usable audio; else one error naming it and why."""
    resolved = (folder / path).resolve()
    if not resolved.is_file():
        raise DataError(f"{where}: {field} {path} does not exist")
    try:
        checked_waveform(*decode(resolved), MIN_CLIP_SECONDS, math.inf)
    except BadRow as error:
        raise DataError(f"{where}: {field} {path}: {error}") from None
    return str(resolved)


def every_line(lines: Iterator, build: Callable, source: Path) -> list:
    """`build(line)` for each line; the lines it refuses are counted and listed in one error."""
    built, refused, total = [], [], 0
    for line in lines:
        total += 1
        try:
            built.append(build(*line))
        except DataError as error:
            refused.append(str(error))
    if refused:
        more = f"; and {len(refused) - SHOWN} more" if len(refused) > SHOWN else ""
        raise DataError(f"{source}: {len(refused)} of {total} lines cannot be used: {'; '.join(refused[:SHOWN])}"
                        f"{more}; fix or remove them (every line is used, or none)")
    return built
