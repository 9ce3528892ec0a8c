"""JSONL read line by line, each line one JSON object, with errors that name the file and line (`DataError`): the
one reader of conversation files, pair files and the overrides beside a dataset."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from higgs_train.runtime.errors import UserError


class DataError(UserError):
    """A row the trainer cannot use; the message names the file, the row and what to fix."""


def jsonl_objects(path: Path, max_line_bytes: int | None = None) -> Iterator[tuple[int, str, dict]]:
    """(line number, "file:line", object) for each non-empty line; a line that is not UTF-8 text holding one JSON
    object, or (given `max_line_bytes`) one longer than that, is an error naming the line: a line is never read
    whole before its length is known."""
    with open(path, "rb") as handle:
        line_number = 0
        while raw := handle.readline(-1 if max_line_bytes is None else max_line_bytes + 1):
            line_number += 1
            where = f"{path}:{line_number}"
            if max_line_bytes is not None and len(raw) > max_line_bytes:
                raise DataError(f"{where}: longer than {max_line_bytes // 1024 ** 2} MiB; a line holds one object "
                                "that names its audio files (audio is never written into the line)")
            if not raw.strip():
                continue
            try:
                line = raw.decode("utf-8-sig" if line_number == 1 else "utf-8")  # a leading byte-order mark dropped
            except UnicodeDecodeError as error:
                raise DataError(f"{where}: not UTF-8 text (byte 0x{raw[error.start]:02x} at column {error.start + 1})"
                                "; re-save the file as UTF-8") from None
            try:
                value = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(f"{where}: not valid JSON ({error.msg}); each line must be one JSON object") from None
            if not isinstance(value, dict):
                raise DataError(f"{where}: each line must be one JSON object")
            yield line_number, where, value
