"""Building the training table (`open_table`): the rows checked, their clips' codes taken from the code cache or
encoded now, written as Arrow files under a temporary name and renamed when complete, so a half-built table is never
opened."""

from __future__ import annotations

import json
import os
import shlex
from collections import Counter
from pathlib import Path

import numpy as np

from higgs_train.data.audio import load_audio
from higgs_train.data.audio_checks import BadRow
from higgs_train.data.audio_codes import encode_files, encode_waveform
from higgs_train.data.code_cache import CodeCache, clip_identity, tokenizer_fingerprint
from higgs_train.data.conversations import DataError, dataset_root, is_prepared_dataset, load_rows
from higgs_train.data.row_checks import check_audio, check_text
from higgs_train.data.table import (
    CLIPS_SCHEMA,
    FORMAT,
    ROWS_SCHEMA,
    WRITE_BATCH,
    TrainingTable,
    write_arrow,
)
from higgs_train.data.table_place import files_identity, remove_outdated_tables, table_folder, table_key
from higgs_train.runtime import atomic
from higgs_train.runtime.logs import logger


def open_table(data_path: str | Path, data_cfg, audio_tokenizer) -> TrainingTable:
    """The table of the conversations at `data_path` (a JSONL or a prepared folder), its rows checked as `data_cfg`
    says, under this audio tokenizer, built first when there is none for the data as it is now (for a JSONL: also
    when one of its clips was edited since)."""
    path = Path(data_path)
    root = dataset_root(path).resolve()
    cache = CodeCache(root, tokenizer_fingerprint(audio_tokenizer), audio_tokenizer.config.codebook_size)
    folder = table_folder(cache, table_key(path, data_cfg, cache))
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
        _build(partial, path, data_cfg, audio_tokenizer, cache)
        if not replacing and (folder / "table.json").is_file():  # another process (node) built it meanwhile
            atomic.remove(partial)
        else:
            atomic.commit(partial, folder)
            remove_outdated_tables(folder, json.loads((folder / "table.json").read_text()))
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


def _file_codes(paths: list[str], cache: CodeCache, audio_tokenizer, data_cfg, data_path: Path) -> tuple[dict, dict]:
    """path -> int16 codes for every clip file (cached when the cache holds it as it is now, else encoded), and
    the counts by origin."""
    codes = cache.fresh(paths) if paths and cache.folder.is_dir() else {}
    cached = len(codes)
    missing = [p for p in paths if p not in codes]
    if missing:
        for path, encoded in encode_files(audio_tokenizer, missing, data_cfg.encode_batch_size):
            codes[path] = encoded.numpy().astype(np.int16)
        model = audio_tokenizer.config._name_or_path or "MODEL"  # the tokenizer's own folder loads as --model
        logger.info(f"encoded {len(missing)} clips into the training table; `higgs-prep encode --input "
                    f"{shlex.quote(str(data_path))} --model {shlex.quote(str(model))}` caches them for good (on many "
                    "GPUs at once), so that an edit of the data does not encode them again")
    return codes, {"cached": cached, "encoded": len(missing)}


def _build(folder: Path, data_path: Path, data_cfg, audio_tokenizer, cache: CodeCache) -> None:
    root = cache.root
    speakers = speaker_descriptions(data_path)
    rows, skipped = _checked_rows(load_rows(data_path, data_cfg.max_examples), data_cfg, speakers,
                                  decode_files=not is_prepared_dataset(data_path))
    if not rows:
        raise DataError(f"{data_path}: no usable row (left out: {skipped})")
    sources = _clip_sources(rows, root, audio_tokenizer)
    files = [str(root / s) for s in sources if isinstance(s, str)]
    identities = {path: clip_identity(path) for path in files}  # before the clips are read
    codes, origin = _file_codes(files, cache, audio_tokenizer, data_cfg, data_path)

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
    info = {"format": FORMAT, "source": str(data_path.resolve()), "files": files_identity(data_path),
            "rows": len(rows), "clips": len(sources),
            "skipped": skipped, "codes": origin, "speakers": speakers}
    (folder / "table.json").write_text(json.dumps(info, indent=2, ensure_ascii=False))


def speaker_descriptions(data_path: Path) -> dict[str, str]:
    """Optional `speakers.json` beside the data: speaker id -> description for multi-speaker scenes."""
    path = dataset_root(data_path) / "speakers.json"
    return json.loads(path.read_text()) if path.is_file() else {}
