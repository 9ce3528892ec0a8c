"""`higgs-prep convert`: any supported source -> checked 24 kHz mono clips + a `datasets` dataset of conversations.

Every row is either kept or reported in `rejected.jsonl` with its reason (`on_bad_row=skip`), or the run stops at the
first bad row (`fail`). The output folder appears only when complete: it is built under a temporary name and renamed.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections import Counter
from pathlib import Path

import datasets
import soundfile as sf

from data_prep.sources import SourceRow, count_rows, read_source
from higgs_train.data.audio import TARGET_SAMPLE_RATE
from higgs_train.data.audio_checks import BadRow, checked_clip
from higgs_train.data.conversations import DataError, validate
from higgs_train.data.row_checks import audio_items, check_text
from higgs_train.data.tasks.layout import last_user_text
from higgs_train.runtime import atomic, ownership
from higgs_train.runtime.errors import UserError
from higgs_train.runtime.logs import NOTICE, logger
from higgs_train.runtime.progress import progress_bar


class ConvertError(UserError):
    """The conversion cannot go on; the message names the row or path and the fix."""


def _speaker_list(kind: str, path: Path) -> dict[str, str] | None:
    """`speakers.json` (speaker id -> description) beside the source, when there is one: it defines known speakers."""
    folder = path.parent if path.is_file() else path
    candidate = folder / "speakers.json"
    return json.loads(candidate.read_text(encoding="utf-8")) if candidate.is_file() else None


class _ClipWriter:
    """Writes each distinct source clip once, as 24 kHz FLAC under `clips/`, and remembers its duration. Names come
    from the row id and never collide: a name already given (row `x`'s second clip `x-1` and a row `x-1`, or ids
    `a b` and `a_b`) gets a short hash of what it names."""

    def __init__(self, folder: Path, min_seconds: float, max_seconds: float):
        self.folder, self.min_seconds, self.max_seconds = folder, min_seconds, max_seconds
        (folder / "clips").mkdir(parents=True, exist_ok=True)
        self.written: dict[str, tuple[str, float]] = {}
        self.names: set[str] = set()

    def _unique(self, name: str, what: str) -> str:
        if name.lower() in self.names:  # lower: case-insensitive file systems
            name = f"{name}~{hashlib.sha1(what.encode()).hexdigest()[:8]}"
        self.names.add(name.lower())
        return name

    def write(self, item: dict, name: str, what: str) -> tuple[str, float]:
        key = item.get("path")
        if key in self.written:
            return self.written[key]
        waveform = checked_clip(item["path"] if "path" in item else item["bytes"], self.min_seconds, self.max_seconds)
        relative = f"clips/{self._unique(name, what)}.flac"
        sf.write(self.folder / relative, waveform, TARGET_SAMPLE_RATE, format="FLAC")
        result = (relative, len(waveform) / TARGET_SAMPLE_RATE)
        if key is not None:
            self.written[key] = result
        return result


def _convert_row(row: SourceRow, clips: _ClipWriter, speakers: dict | None, seen_ids: set) -> dict:
    """The output record of one source row, or `BadRow`."""
    if row.error is not None:
        raise row.error
    if row.id in seen_ids:
        raise BadRow("duplicate id", row.id)
    check_text(row.messages, row.speaker, speakers)
    safe_id = re.sub(r"[^\w.-]", "_", row.id)
    seconds = 0.0
    items = audio_items(row.messages)
    for index, item in enumerate(items):
        name = safe_id if len(items) == 1 else f"{safe_id}-{index}"
        relative, seconds = clips.write(item, name, f"{row.id}\0{index}")
        item.clear()
        item.update({"type": "audio", "path": relative})
    try:
        validate({"messages": row.messages}, row.where)
    except DataError as error:
        raise BadRow("not a valid conversation", str(error)) from None
    seen_ids.add(row.id)
    return {"id": row.id, "speaker": row.speaker, "text": last_user_text(row.messages),
            "audio": items[-1]["path"] if items else None, "seconds": round(seconds, 3),
            "messages": json.dumps(row.messages, ensure_ascii=False)}


def convert(kind: str, source: str | Path, output: str | Path, on_bad_row: str = "skip", min_seconds: float = 0.3,
            max_seconds: float = 30.0, split: str = "train", overwrite: bool = False) -> dict:
    """Writes `output/` (dataset + clips/ + rejected.jsonl + report.json) and returns the report."""
    source, output = Path(source), Path(output)
    if output.resolve() == source.resolve() or output.resolve() in source.resolve().parents:
        raise ConvertError(f"--out {output} holds the input {source}, which a conversion must never replace; "
                           "write the dataset to a folder of its own")
    if output.exists() and not overwrite and (not output.is_dir() or any(output.iterdir())):
        raise ConvertError(f"{output}: already exists and is not empty; choose another --out or add --overwrite")
    ownership.check_replaceable(output, "prepared-dataset", "--out", also_ours=("codes/*",))  # encode's cache
    if kind == "ljspeech":
        logger.log(NOTICE, f"ljspeech: every row is one speaker, named after the folder ({source.name!r}); for "
                           "several voices use audiofolder or hf with a speaker column, or jsonl with \"speaker\"")
    for stale in atomic.remove_stale_partials(output):
        logger.info(f"removed {stale}, left by a conversion that did not finish")
    with atomic.atomic_output(output, unique=True) as partial:
        partial.mkdir()
        report = _write_dataset(kind, source, partial, on_bad_row, min_seconds, max_seconds, split)
        ownership.mark(partial, "prepared-dataset", record_files=True, source=str(source), format=kind)
        return report


def _write_dataset(kind: str, source: Path, folder: Path, on_bad_row: str, min_seconds: float, max_seconds: float,
                   split: str) -> dict:
    speakers = _speaker_list(kind, source)
    clips = _ClipWriter(folder, min_seconds, max_seconds)
    records, rejected, seen_ids = [], [], set()
    started, audio_seconds = time.time(), 0.0
    progress = progress_bar(read_source(kind, source, split), total=count_rows(kind, source, split),
                    desc=f"converting {kind}", unit="row")
    for row in progress:
        try:
            record = _convert_row(row, clips, speakers, seen_ids)
        except BadRow as error:
            if on_bad_row == "fail":
                raise ConvertError(f"{row.where}: {error}; fix the row or use --on-bad-row skip") from None
            rejected.append({"row": row.where, "id": row.id, "reason": error.reason, "detail": str(error)})
            continue
        records.append(record)
        audio_seconds += record["seconds"]
        elapsed = max(time.time() - started, 1e-9)
        progress.set_postfix(clips_per_s=f"{len(records) / elapsed:.1f}",
                             audio_s_per_s=f"{audio_seconds / elapsed:.1f}")
    progress.close()
    if not records:
        if not rejected:
            raise ConvertError(f"{source}: holds no rows; point --data at a folder of clips with its metadata")
        reasons = ", ".join(f"{n} {reason}" for reason, n in Counter(e["reason"] for e in rejected).most_common())
        raise ConvertError(f"{source}: no usable row ({len(rejected)} rejected: {reasons}; the first: "
                           f"{rejected[0]['detail']})")
    datasets.disable_progress_bars()  # its "Saving the dataset" bar would draw over ours
    datasets.Dataset.from_list(records).save_to_disk(str(folder))
    with open(folder / "rejected.jsonl", "w", encoding="utf-8") as handle:
        for entry in rejected:
            handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
    if speakers is not None:
        (folder / "speakers.json").write_text(json.dumps(speakers, indent=2, ensure_ascii=False))
    report = {"format": kind, "source": str(source), "kept": len(records), "rejected": len(rejected),
              "rejected_by_reason": dict(Counter(entry["reason"] for entry in rejected)),
              "audio_seconds": round(audio_seconds, 2)}
    (folder / "report.json").write_text(json.dumps(report, indent=2))
    return report
