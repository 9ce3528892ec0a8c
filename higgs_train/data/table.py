"""The training table: every usable row of a dataset with its clips' codes, in memory-mapped Arrow files that
training reads by column and by index, so start-up costs the same at 2,000 rows as at 200,000.

It lives beside the code cache, `<root>/codes/<audio tokenizer fingerprint>/table-<key>/` (data on a read-only
mount: under `$HIGGS_TRAIN_CACHE/tables/`):
- `rows.arrow`: id, speaker, messages (JSON; each audio item names its `clip`, a row of clips.arrow);
- `clips.arrow`: path (relative to the root; null for inline audio), num_codebooks, codes (int16, K*T), and the
  size and modification time of the file they were encoded from;
- `table.json`: what the build left out and where the codes came from;
- `positions-*.npy`: conversation lengths per task and text tokenizer (`task_data.py`).
The key hashes what decides the contents: the data files' size and modification time (speakers.json too), the row
checks' settings, `data.max_examples` and the code-cache shards it read. The first run that needs a table builds it
(checks, cached or newly encoded codes, with progress bars) under a temporary name and renames it when complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
from collections import Counter
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import torch

from higgs_train import assets, atomic
from higgs_train.data.audio import load_audio
from higgs_train.data.audio_checks import BadRow
from higgs_train.data.audio_codes import encode_files, encode_waveform
from higgs_train.data.code_cache import CodeCache, clip_identity, tokenizer_fingerprint
from higgs_train.data.conversations import DataError, dataset_root, is_prepared_dataset, load_rows
from higgs_train.data.overrides import FILE_NAME as OVERRIDES_FILE
from higgs_train.data.row_checks import check_audio, check_text
from higgs_train.logs import logger

FORMAT = 1
ROWS_SCHEMA = pa.schema([("id", pa.string()), ("speaker", pa.string()), ("messages", pa.string())])
CLIPS_SCHEMA = pa.schema([("path", pa.string()), ("num_codebooks", pa.int32()), ("codes", pa.list_(pa.int16())),
                          ("bytes", pa.int64()), ("mtime_ns", pa.int64())])
WRITE_BATCH = 4096  # clips per Arrow record batch


def speaker_descriptions(data_path: Path) -> dict[str, str]:
    """Optional `speakers.json` beside the data: speaker id -> description for multi-speaker scenes."""
    path = dataset_root(data_path) / "speakers.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def data_files(data_path: Path) -> list[Path]:
    """The files a dataset's rows come from: the JSONL, or a prepared dataset's Arrow and JSON files."""
    if data_path.is_file():
        return [data_path]
    return sorted(p for p in data_path.glob("*") if p.suffix in (".arrow", ".json") and not p.name.startswith("."))


class TrainingTable:
    """A built table, memory-mapped (`datasets` tables, which DataLoader workers reopen by path)."""

    def __init__(self, folder: Path, root: Path):
        self.folder, self.root = Path(folder), Path(root)
        self.rows = datasets.Dataset.from_file(str(self.folder / "rows.arrow"))
        self.clips = datasets.Dataset.from_file(str(self.folder / "clips.arrow"))
        self.info = json.loads((self.folder / "table.json").read_text())
        self.built = False  # by this process, just now

    def __len__(self) -> int:
        return len(self.rows)

    def speakers(self) -> list[str | None]:
        return self.rows.data.column("speaker").to_pylist()

    def row(self, index: int, tensors: bool = True) -> dict:
        """Row `index` as a conversation record, each audio item with its `codes`: (K, T) LongTensors, or int16
        views when only their shapes are needed (`tensors=False`)."""
        data = self.rows.data
        messages = with_codes(json.loads(data.column("messages")[index].as_py()), self.clips, self.root, tensors)
        return {"id": data.column("id")[index].as_py(), "speaker": data.column("speaker")[index].as_py(),
                "messages": messages}

    def changed_clips(self) -> list[str]:
        """Clip files whose size or modification time differ from those their codes were made from."""
        paths = self.clips.data.column("path").to_pylist()
        recorded = zip(self.clips.data.column("bytes").to_pylist(), self.clips.data.column("mtime_ns").to_pylist())
        return [path for path, identity in zip(paths, recorded)
                if path is not None and clip_identity(self.root / path) != identity]


def clip_codes(clips: datasets.Dataset, clip: int) -> np.ndarray:
    """(K, T) int16 codes of row `clip` of a clips table, a view into the mapped file."""
    books = clips.data.column("num_codebooks")[clip].as_py()
    return clips.data.column("codes")[clip].values.to_numpy().reshape(books, -1)


def longest_clip_frames(clips: datasets.Dataset) -> int:
    """The frames of the longest clip of a clips table (what an export's token limit is derived from)."""
    import pyarrow.compute as pc

    lengths = pc.divide(pc.list_value_length(clips.data.column("codes")), clips.data.column("num_codebooks"))
    return int(pc.max(lengths).as_py() or 0)


def codes_tensor(codes: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(codes.astype(np.int64))


def with_codes(messages: list[dict], clips: datasets.Dataset, root: Path | None = None,
               tensors: bool = True) -> list[dict]:
    """Messages whose audio items name a row of `clips` (`clip`), given their `codes` instead (LongTensors, or int16
    views with `tensors=False`); file paths made absolute under `root`."""
    for message in messages:
        for item in message["content"]:
            if item["type"] == "audio":
                codes = clip_codes(clips, item.pop("clip"))
                item["codes"] = codes_tensor(codes) if tensors else codes
                if "path" in item and root is not None:
                    item["path"] = str(root / item["path"])
    return messages


def _files_identity(data_path: Path) -> list:
    """(name, size, modification time) of the data files, speakers.json and overrides.jsonl: what tells the data has
    changed."""
    files = data_files(data_path)
    for extra in (dataset_root(data_path) / "speakers.json", dataset_root(data_path) / OVERRIDES_FILE):
        if extra.is_file() and extra not in files:
            files.append(extra)
    return [[f.name, *clip_identity(f)] for f in files]


def _table_key(data_path: Path, data_cfg, cache: CodeCache) -> str:
    parts = {"format": FORMAT, "files": _files_identity(data_path), "shards": [s.name for s in cache.shards()],
             "checks": [data_cfg.min_seconds, data_cfg.max_seconds, data_cfg.on_bad_row, data_cfg.max_examples]}
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def _remove_outdated_tables(folder: Path, info: dict) -> None:
    """Tables of the same source built from its files as they were before: no run can use them again."""
    for other in folder.parent.glob("table-*"):
        try:
            previous = json.loads((other / "table.json").read_text())
        except (OSError, ValueError):
            continue
        if other != folder and previous.get("source") == info["source"] and previous.get("files") != info["files"]:
            atomic.remove(other)


def _writable(folder: Path) -> bool:
    """Whether files can be made in `folder` (or in its nearest existing parent, where it does not exist yet)."""
    while not folder.exists():
        folder = folder.parent
    return os.access(folder, os.W_OK)


def _table_folder(cache: CodeCache, key: str) -> Path:
    """Beside the code cache; for data on a read-only mount, in the user's cache (`HIGGS_TRAIN_CACHE`), under a
    folder named after the data's place and the tokenizer."""
    if _writable(cache.folder):
        return cache.folder / f"table-{key}"
    place = hashlib.sha256(f"{cache.root}\0{cache.folder.name}".encode()).hexdigest()[:16]
    folder = assets.cache_root() / "tables" / place / f"table-{key}"
    logger.info(f"{cache.root} is read-only: the training table lives in {folder}")
    return folder


def open_table(data_cfg, audio_tokenizer, show_progress: bool = True) -> TrainingTable:
    """The table of `data_cfg.path` under this audio tokenizer, built first when there is none for the data as it
    is now (for a JSONL: also when one of its clips was edited since)."""
    path = Path(data_cfg.path)
    root = dataset_root(path).resolve()
    cache = CodeCache(root, tokenizer_fingerprint(audio_tokenizer), audio_tokenizer.config.codebook_size)
    folder = _table_folder(cache, _table_key(path, data_cfg, cache))
    replacing = (folder / "table.json").is_file()
    if replacing:
        table = TrainingTable(folder, root)
        changed = [] if is_prepared_dataset(path) else table.changed_clips()
        if not changed:
            return table
        logger.info(f"{len(changed)} clips changed since the training table was built (e.g. {changed[0]}); "
                    "building it again")
    for stale in atomic.remove_stale_partials(folder):
        logger.info(f"removed {stale}, left by a table build that did not finish")
    partial = atomic.partial_path(folder, unique=True)
    partial.mkdir(parents=True)
    try:
        _build(partial, path, data_cfg, audio_tokenizer, cache, show_progress)
        if not replacing and (folder / "table.json").is_file():  # another process (node) built it meanwhile
            atomic.remove(partial)
        else:
            atomic.commit(partial, folder)
            _remove_outdated_tables(folder, json.loads((folder / "table.json").read_text()))
    except BaseException:
        atomic.remove(partial)
        raise
    table = TrainingTable(folder, root)
    table.built = True
    return table


def _checked_rows(rows: list[dict], data_cfg, speakers: dict, decode_files: bool) -> tuple[list, dict]:
    """(rows that pass the checks `higgs-prep convert` makes, {reason: count} for the others); with on_bad_row=fail
    the first bad row raises. `decode_files=False` for prepared datasets, whose clips convert has decoded."""
    usable, skipped, examples, seen = [], Counter(), [], set()
    for row in rows:
        try:
            if row["id"] in seen:
                raise BadRow("duplicate id", f"another row has id {row['id']!r}")
            check_text(row["messages"], row.get("speaker"), speakers or None)
            check_audio(row["messages"], data_cfg.min_seconds, data_cfg.max_seconds, decode_files)
        except BadRow as error:
            if data_cfg.on_bad_row == "fail":
                raise DataError(f"row {row['id']}: {error}; fix it, or set data.on_bad_row=skip to leave such rows "
                                "out (`higgs-prep convert jsonl` lists every bad row)") from None
            skipped[error.reason] += 1
            examples.append(f"row {row['id']}: {error}")
            continue
        seen.add(row["id"])
        usable.append(row)
    if examples:
        logger.warning(f"left out {len(examples)} rows that fail the data checks ({dict(skipped)}; e.g. "
                       f"{'; '.join(examples[:3])}); `higgs-prep convert` lists every bad row")
    return usable, dict(skipped)


def _clip_sources(rows: list[dict], root: Path, audio_tokenizer) -> list:
    """Each distinct clip once, in order of first use: a path relative to the root, or (K, T) int16 codes for
    inline audio. Every audio item gets `clip`, its index; file items keep their relative path."""
    sources, index_of = [], {}
    for row in rows:
        for message in row["messages"]:
            for item in message["content"]:
                if item["type"] != "audio":
                    continue
                if "path" in item and "codes" not in item and "array" not in item:
                    relative = Path(os.path.relpath(item["path"], root)).as_posix()
                    if relative not in index_of:
                        index_of[relative] = len(sources)
                        sources.append(relative)
                    item.update(path=relative, clip=index_of[relative])
                    continue
                if "codes" in item:
                    codes = np.asarray(item.pop("codes"), dtype=np.int16)
                else:
                    waveform = load_audio(np.asarray(item.pop("array"), dtype=np.float32),
                                          source_rate=item.pop("sampling_rate"))
                    codes = encode_waveform(audio_tokenizer, waveform).numpy().astype(np.int16)
                item.pop("path", None)
                item["clip"] = len(sources)
                sources.append(codes)
    return sources


def _file_codes(paths: list[str], cache: CodeCache, audio_tokenizer, data_cfg, data_path: Path,
                show_progress: bool) -> tuple[dict, dict]:
    """path -> int16 codes for every clip file (cached when the cache holds it as it is now, else encoded), and
    the counts by origin."""
    codes = cache.fresh(paths) if paths and cache.folder.is_dir() else {}
    cached = len(codes)
    missing = [p for p in paths if p not in codes]
    if missing:
        for path, encoded in encode_files(audio_tokenizer, missing, data_cfg.encode_batch_size, show_progress):
            codes[path] = encoded.numpy().astype(np.int16)
        model = audio_tokenizer.config._name_or_path or "MODEL"  # the tokenizer's own folder loads as --model
        logger.info(f"encoded {len(missing)} clips into the training table; `higgs-prep encode --input "
                    f"{shlex.quote(str(data_path))} --model {shlex.quote(str(model))}` caches them for good (on many "
                    "GPUs at once), so that an edit of the data does not encode them again")
    return codes, {"cached": cached, "encoded": len(missing)}


def write_arrow(path: Path, schema: pa.Schema, batches) -> None:
    """An Arrow stream file of `schema` from an iterable of column dicts, which `datasets` memory-maps."""
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        for batch in batches:
            writer.write_table(pa.table(batch, schema=schema))


def _build(folder: Path, data_path: Path, data_cfg, audio_tokenizer, cache: CodeCache, show_progress: bool) -> None:
    root = cache.root
    speakers = speaker_descriptions(data_path)
    rows, skipped = _checked_rows(load_rows(data_path, data_cfg.max_examples), data_cfg, speakers,
                                  decode_files=not is_prepared_dataset(data_path))
    if not rows:
        raise DataError(f"{data_path}: no usable row (left out: {skipped})")
    sources = _clip_sources(rows, root, audio_tokenizer)
    files = [str(root / s) for s in sources if isinstance(s, str)]
    identities = {path: clip_identity(path) for path in files}  # before the clips are read
    codes, origin = _file_codes(files, cache, audio_tokenizer, data_cfg, data_path, show_progress)

    def clip_batches():
        for start in range(0, len(sources), WRITE_BATCH):
            chunk = sources[start:start + WRITE_BATCH]
            arrays = [codes[str(root / s)] if isinstance(s, str) else s for s in chunk]
            known = [identities[str(root / s)] if isinstance(s, str) else (-1, -1) for s in chunk]
            yield {"path": [s if isinstance(s, str) else None for s in chunk],
                   "num_codebooks": [a.shape[0] for a in arrays], "codes": [a.reshape(-1) for a in arrays],
                   "bytes": [k[0] for k in known], "mtime_ns": [k[1] for k in known]}

    write_arrow(folder / "clips.arrow", CLIPS_SCHEMA, clip_batches())
    write_arrow(folder / "rows.arrow", ROWS_SCHEMA, [{
        "id": [str(r["id"]) for r in rows],
        "speaker": [None if r.get("speaker") is None else str(r["speaker"]) for r in rows],
        "messages": [json.dumps(r["messages"], ensure_ascii=False) for r in rows]}])
    info = {"format": FORMAT, "source": str(data_path.resolve()), "files": _files_identity(data_path),
            "rows": len(rows), "clips": len(sources),
            "skipped": skipped, "codes": origin, "speakers": speakers}
    (folder / "table.json").write_text(json.dumps(info, indent=2, ensure_ascii=False))

