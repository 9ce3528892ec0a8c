"""Readers for the datasets people have. Each yields `SourceRow`s: a conversation in our schema whose audio items
point at their source (`path` or encoded `bytes`), or a `BadRow` for a row that cannot even be read."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from higgs_train.builtins.demo_data import SCENE
from higgs_train.data.audio_checks import BadRow
from higgs_train.data.tasks.layout import basic_messages

FORMATS = ("ljspeech", "audiofolder", "libritts", "hf", "jsonl")
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a")
TRANSCRIPT_SUFFIXES = (".normalized.txt", ".txt", ".lab")  # LibriTTS's normalized text first; .lab: aligners' own
TEXT_COLUMNS = ("text", "transcription", "normalized_text", "sentence", "transcript")
SPEAKER_COLUMNS = ("speaker", "speaker_id", "client_id")
SCENE_START, SCENE_END = "<|scene_desc_start|>", "<|scene_desc_end|>"


@dataclass
class SourceRow:
    where: str  # file:line or dataset[index], for error messages and rejected.jsonl
    id: str
    speaker: str | None = None
    messages: list[dict] = field(default_factory=list)
    error: BadRow | None = None


def _decoded_lines(path: Path) -> Iterator[tuple[int, str | None]]:
    """(line number, text) per non-empty line; text is None when the line is not valid UTF-8."""
    for number, raw in enumerate(path.read_bytes().splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            yield number, raw.decode("utf-8")
        except UnicodeDecodeError:
            yield number, None


def _not_utf8(where: str, row_id: str) -> SourceRow:
    return SourceRow(where, row_id, error=BadRow("transcript is not UTF-8", "re-save the file as UTF-8"))


def read_ljspeech(root: Path) -> Iterator[SourceRow]:
    """`metadata.csv` lines `id|transcript|normalized transcript`, clips in `wavs/<id>.wav`; one speaker."""
    metadata = root / "metadata.csv"
    if not metadata.is_file():
        raise FileNotFoundError(f"{metadata}: missing; an LJSpeech folder holds metadata.csv and wavs/")
    for number, line in _decoded_lines(metadata):
        where = f"{metadata}:{number}"
        if line is None:
            yield _not_utf8(where, f"line{number}")
            continue
        fields = line.split("|")
        text = fields[2] if len(fields) > 2 and fields[2].strip() else (fields[1] if len(fields) > 1 else "")
        audio = {"path": str(root / "wavs" / f"{fields[0]}.wav")}
        yield SourceRow(where, fields[0], root.name, basic_messages(text, audio, SCENE))


def _first(record: dict, names: tuple[str, ...]):
    return next((record[name] for name in names if record.get(name) not in (None, "")), None)


def read_audiofolder(root: Path) -> Iterator[SourceRow]:
    """Clips beside `metadata.csv` (header row) or `metadata.jsonl`, with `file_name`, a transcript column and an
    optional speaker column."""
    csv_path, jsonl_path = root / "metadata.csv", root / "metadata.jsonl"
    metadata = csv_path if csv_path.is_file() else jsonl_path
    if not metadata.is_file():
        raise FileNotFoundError(f"{root}: no metadata.csv or metadata.jsonl beside the clips")
    header = None
    for number, line in _decoded_lines(metadata):
        where = f"{metadata}:{number}"
        if line is None:
            yield _not_utf8(where, f"line{number}")
            continue
        if metadata == csv_path:
            values = next(csv.reader([line]))
            if header is None:
                header = values
                continue
            record = dict(zip(header, values))
        else:
            record = json.loads(line)
        file_name = record.get("file_name")
        if not file_name:
            yield SourceRow(where, f"line{number}", error=BadRow("no file_name", "add a file_name column"))
            continue
        row_id = Path(file_name).with_suffix("").as_posix().replace("/", "_")
        text = _first(record, TEXT_COLUMNS) or ""
        speaker = _first(record, SPEAKER_COLUMNS)
        audio = {"path": str(root / file_name)}
        yield SourceRow(where, row_id, speaker and str(speaker), basic_messages(text, audio, SCENE))


def _clips_with_text(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())


def read_libritts(root: Path) -> Iterator[SourceRow]:
    """Clips with their transcript in a text file beside each (`a.wav` + `a.normalized.txt`, `a.txt` or `a.lab`), at
    any depth: LibriTTS (`SPEAKER/CHAPTER/...`) and forced-alignment corpora (`SPEAKER/...`). The speaker is the first
    folder under the input (none for clips at its top)."""
    clips = _clips_with_text(root)
    if not clips:
        raise FileNotFoundError(f"{root}: no audio file ({', '.join(AUDIO_SUFFIXES)}) at any depth")
    for clip in clips:
        relative = clip.relative_to(root)
        row_id = relative.with_suffix("").as_posix().replace("/", "_")
        speaker = relative.parts[0] if len(relative.parts) > 1 else None
        text_file = next((clip.with_name(clip.stem + s) for s in TRANSCRIPT_SUFFIXES
                          if clip.with_name(clip.stem + s).is_file()), None)
        if text_file is None:
            yield SourceRow(str(clip), row_id, speaker, error=BadRow(
                "no transcript file", f"put its text in {clip.stem}.txt beside it"))
            continue
        try:
            text = text_file.read_text(encoding="utf-8").strip()
        except UnicodeDecodeError:
            yield _not_utf8(str(text_file), row_id)
            continue
        yield SourceRow(str(text_file), row_id, speaker, basic_messages(text, {"path": str(clip)}, SCENE))


def read_hf(root: Path, split: str = "train") -> Iterator[SourceRow]:
    """A Hugging Face `datasets` dataset with an `Audio` column: a `save_to_disk` folder or a local dataset folder."""
    import datasets

    if (root / "dataset_dict.json").is_file() or (root / "state.json").is_file():
        dataset = datasets.load_from_disk(str(root))
    else:
        dataset = datasets.load_dataset(str(root))
    if isinstance(dataset, datasets.DatasetDict):
        if split not in dataset:
            raise ValueError(f"{root}: no split {split!r}; it has {list(dataset)} (use --split)")
        dataset = dataset[split]
    audio_columns = [name for name, feature in dataset.features.items() if isinstance(feature, datasets.Audio)]
    if not audio_columns:
        raise ValueError(f"{root}: no column of type datasets.Audio (columns: {list(dataset.features)})")
    # Decoding is ours (soundfile): datasets' own decoder needs torchcodec.
    dataset = dataset.cast_column(audio_columns[0], datasets.Audio(decode=False))
    for index, record in enumerate(dataset):
        audio = record[audio_columns[0]]
        if audio.get("bytes"):
            source = {"bytes": audio["bytes"]}
        else:
            clip = Path(audio["path"])
            source = {"path": str(clip if clip.is_absolute() else root / clip)}
        row_id = str(record.get("id", index))
        speaker = _first(record, SPEAKER_COLUMNS)
        text = _first(record, TEXT_COLUMNS) or ""
        messages = basic_messages(str(text), source, SCENE)
        yield SourceRow(f"{root}[{index}]", row_id, speaker and str(speaker), messages)


def _items(content) -> list[dict]:
    """Message content as a list of our items: plain strings, Higgs ChatML `AudioContent` (`audio_url`) or ours."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    items = []
    for item in content if isinstance(content, list) else [content]:
        if item.get("type") == "audio" and "audio_url" in item:
            items.append({"type": "audio", "path": item["audio_url"]})
        else:
            items.append(dict(item))
    return items


def normalize_messages(messages: list[dict]) -> list[dict]:
    """Our schema from ours or the Higgs ChatML layout (whose scene sits inside the system text between markers)."""
    normalized = [{**m, "content": _items(m["content"])} for m in messages]
    head = normalized[0] if normalized else {}
    text = head.get("content", [{}])[0].get("text", "") if head.get("role") == "system" else ""
    if SCENE_START in text and SCENE_END in text:
        system, _, rest = text.partition(SCENE_START)
        scene, _, _ = rest.partition(SCENE_END)
        normalized[0] = {"role": "system", "content": [{"type": "text", "text": system.strip()}]}
        normalized.insert(1, {"role": "scene", "content": [{"type": "text", "text": scene.strip()}]})
    return normalized


def read_jsonl(path: Path) -> Iterator[SourceRow]:
    """Conversation JSONL (ours, or Higgs ChatML); relative audio paths are relative to the file."""
    for number, line in _decoded_lines(path):
        where = f"{path}:{number}"
        if line is None:
            yield _not_utf8(where, f"line{number}")
            continue
        try:
            record = json.loads(line)
            messages = normalize_messages(record["messages"])
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError, IndexError) as error:
            yield SourceRow(where, f"line{number}", error=BadRow("not a conversation row", repr(error)))
            continue
        for message in messages:
            for item in message["content"]:
                if item.get("type") == "audio" and "path" in item:
                    item["path"] = str(path.parent / item["path"])
        row_id = str(record.get("id", f"line{number}"))
        yield SourceRow(where, row_id, record.get("speaker"), messages)


def read_source(kind: str, path: Path, split: str = "train") -> Iterator[SourceRow]:
    if kind not in FORMATS:
        raise ValueError(f"format {kind!r} is not known; use one of {list(FORMATS)}")
    if not path.exists():
        raise FileNotFoundError(f"{path}: does not exist")
    readers = {"ljspeech": read_ljspeech, "audiofolder": read_audiofolder, "libritts": read_libritts,
               "jsonl": read_jsonl}
    return read_hf(path, split) if kind == "hf" else readers[kind](path)


def count_rows(kind: str, path: Path, split: str = "train") -> int | None:
    """How many rows `read_source` will yield, read cheaply for the progress bar's total (None if unknown)."""
    try:
        if kind == "hf":
            import datasets

            dataset = datasets.load_from_disk(str(path))
            return len(dataset[split] if isinstance(dataset, datasets.DatasetDict) else dataset)
        if kind == "libritts":
            return len(_clips_with_text(path))
        metadata = {"ljspeech": path / "metadata.csv", "jsonl": path}.get(kind)
        if kind == "audiofolder":
            metadata = path / "metadata.csv" if (path / "metadata.csv").is_file() else path / "metadata.jsonl"
        lines = sum(1 for line in metadata.read_bytes().splitlines() if line.strip())
        return lines - 1 if metadata.name == "metadata.csv" and kind == "audiofolder" else lines
    except (OSError, ValueError, KeyError, FileNotFoundError):
        return None
