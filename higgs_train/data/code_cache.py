"""Audio codes on disk, beside the dataset: `codes/<tokenizer fingerprint>/shard-NNNNN.arrow`.

The fingerprint hashes the audio tokenizer's config and weights, so codes made by another tokenizer are never reused;
each entry records its clip's size and modification time, so codes of a clip edited since are never reused either.
Each shard is written under a temporary name and renamed when complete, to a name that records its SHA-256; a partial
shard is never read, so an interrupted `higgs-prep encode` resumes with only the missing clips, and a shard damaged
later is found when it is read.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from higgs_train.runtime import atomic
from higgs_train.runtime.logs import logger

SHARD_GLOB = "shard-*.arrow"
# `bytes` and `mtime_ns`: the clip's size and modification time when it was encoded, so an edited clip is seen.
SCHEMA = pa.schema([("key", pa.string()), ("num_codebooks", pa.int32()), ("codes", pa.list_(pa.int16())),
                    ("bytes", pa.int64()), ("mtime_ns", pa.int64())])
UNKNOWN = (-1, -1)


def clip_identity(path: str | Path) -> tuple[int, int]:
    """(size, modification time in ns) of a clip: what tells a re-recorded or edited file at the same path."""
    try:
        stat = os.stat(path)
    except OSError:
        return UNKNOWN
    return stat.st_size, stat.st_mtime_ns


def tokenizer_fingerprint(audio_tokenizer) -> str:
    """A hash of what decides the codes: architecture config, weight names, dtypes and values."""
    config = audio_tokenizer.config.to_dict()
    for volatile in ("_name_or_path", "transformers_version"):
        config.pop(volatile, None)
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
    for name, tensor in sorted(audio_tokenizer.state_dict().items()):
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def _shard_problem(path: Path, table: pa.Table | None, codebook_size: int | None) -> str | None:
    """Why a shard cannot be trusted: its content no longer matches the SHA-256 its name records (older shards carry
    none), or it holds codes no tokenizer of this size makes."""
    digest = path.stem.rpartition("-")[2] if path.stem.count("-") >= 2 else None
    if digest is not None:
        with open(path, "rb") as handle:
            if hashlib.file_digest(handle, "sha256").hexdigest()[:16] != digest:
                return "its content differs from what was written (SHA-256)"
    if table is None:
        return "it cannot be read as Arrow"
    bounds = pc.min_max(table.column("codes").combine_chunks().flatten())
    low, high = bounds["min"].as_py(), bounds["max"].as_py()
    if low is not None and (low < 0 or (codebook_size is not None and high >= codebook_size)):
        return f"it holds codes outside [0, {codebook_size})"
    return None


def _read(path: Path) -> pa.Table | None:
    try:
        with pa.memory_map(str(path)) as source:
            return pa.ipc.open_file(source).read_all()
    except (pa.ArrowInvalid, OSError):
        return None


class CodeCache:
    """The codes of one dataset root under one audio tokenizer; keys are clip paths relative to the root.

    A shard's name records the SHA-256 of its bytes (`shard-NNNNN-<hash>.arrow`), so reading it can tell a shard
    damaged after it was written; a damaged shard is named in a warning and removed (it is ours), and its clips are
    encoded again."""

    def __init__(self, root: str | Path, fingerprint: str, codebook_size: int | None = None):
        self.root = Path(root)
        self.folder = self.root / "codes" / fingerprint
        self.codebook_size = codebook_size

    def key(self, path: str | Path) -> str:
        return Path(os.path.relpath(path, self.root)).as_posix()

    def shards(self) -> list[Path]:
        return sorted(self.folder.glob(SHARD_GLOB))

    def load(self) -> dict[str, np.ndarray]:
        """Every clip of the intact shards: key -> (K, T) int16 codes (a clip encoded again: its newest codes)."""
        return {key: codes for key, (codes, _) in self._entries().items()}

    def fresh(self, paths) -> dict[str, np.ndarray]:
        """path -> (K, T) int16 codes for the clips whose cached codes were made from the file as it is now (same
        size and modification time); a clip edited since, or cached by a version that did not record it, is left
        out, so it is encoded again and never silently reused."""
        entries, found, stale = self._entries(), {}, []
        for path in paths:
            entry = entries.get(self.key(path))
            if entry is None:
                continue
            if entry[1] == UNKNOWN or entry[1] != clip_identity(path):
                stale.append(path)
                continue
            found[path] = entry[0]
        if stale:
            logger.info(f"{len(stale)} cached clips changed since they were encoded (size or modification time, e.g. "
                        f"{stale[0]}) or were cached without that record; they are encoded again")
        return found

    def _entries(self) -> dict[str, tuple[np.ndarray, tuple[int, int]]]:
        """key -> (codes, identity) from every intact shard (a clip in several: the newest shard's); damaged
        shards are removed. The codes are int16 views into the memory-mapped shards, not copies."""
        entries = {}
        for shard in self.shards():
            table = _read(shard)
            problem = _shard_problem(shard, table, self.codebook_size)
            if problem:
                logger.warning(f"code cache shard {shard} is damaged ({problem}); removed, its clips are encoded "
                               "again")
                atomic.remove(shard)
                continue
            codes = table.column("codes").combine_chunks()
            offsets, values = codes.offsets.to_numpy(), codes.values.to_numpy()
            books = table.column("num_codebooks").to_numpy()
            known = "bytes" in table.column_names
            sizes = table.column("bytes").to_pylist() if known else [UNKNOWN[0]] * len(table)
            times = table.column("mtime_ns").to_pylist() if known else [UNKNOWN[1]] * len(table)
            for i, (key, size, mtime) in enumerate(zip(table.column("key").to_pylist(), sizes, times)):
                entries[key] = (values[offsets[i]:offsets[i + 1]].reshape(int(books[i]), -1), (size, mtime))
        return entries

    def write_shard(self, entries: dict[str, torch.Tensor | np.ndarray],
                    identities: dict[str, tuple[int, int]] | None = None) -> Path:
        """Atomically adds one shard holding `entries` (key -> (K, T) codes), named after its own hash.
        `identities`: key -> `clip_identity` of the file the codes were made from, taken before it was read
        (default: the file under the root now)."""
        identities = {key: (identities or {}).get(key) or clip_identity(self.root / key) for key in entries}
        self.folder.mkdir(parents=True, exist_ok=True)
        numbers = [int(p.name.split("-")[1].split(".")[0]) for p in self.shards()]
        number = max(numbers, default=-1) + 1
        table = pa.table({
            "key": list(entries),
            "num_codebooks": [int(c.shape[0]) for c in entries.values()],
            "codes": [np.asarray(c, dtype=np.int16).reshape(-1) for c in entries.values()],
            "bytes": [identities[key][0] for key in entries],
            "mtime_ns": [identities[key][1] for key in entries],
        }, schema=SCHEMA)
        partial = atomic.partial_path(self.folder / f"shard-{number:05d}.arrow", unique=True)
        try:
            with pa.OSFile(str(partial), "wb") as sink, pa.ipc.new_file(sink, SCHEMA) as writer:
                writer.write_table(table)
            with open(partial, "rb") as handle:
                digest = hashlib.file_digest(handle, "sha256").hexdigest()[:16]
            return atomic.commit(partial, self.folder / f"shard-{number:05d}-{digest}.arrow")
        except BaseException:
            atomic.remove(partial)
            raise
