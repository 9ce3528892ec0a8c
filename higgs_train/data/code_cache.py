"""Audio codes on disk, beside the dataset: `codes/<tokenizer fingerprint>/shard-NNNNN.arrow`.

The fingerprint hashes the audio tokenizer's config and weights, so codes made by another tokenizer are never reused.
Each shard is written under a temporary name and renamed when complete, to a name that records its SHA-256; a partial
shard is never read, so an interrupted `higgs-prep encode` resumes with only the missing clips, and a shard damaged
later is found when it is read.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import torch

from higgs_train import atomic
from higgs_train.logs import logger

SHARD_GLOB = "shard-*.arrow"
SCHEMA = pa.schema([("key", pa.string()), ("num_codebooks", pa.int32()), ("codes", pa.list_(pa.int16()))])


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

    def load(self) -> dict[str, torch.Tensor]:
        """Every clip of the intact shards: key -> (K, T) long codes."""
        codes = {}
        for shard in self.shards():
            table = _read(shard)
            problem = _shard_problem(shard, table, self.codebook_size)
            if problem:
                logger.warning(f"code cache shard {shard} is damaged ({problem}); removed, its clips are encoded "
                               "again")
                atomic.remove(shard)
                continue
            for key, k, flat in zip(*(table.column(name).to_pylist() for name in ("key", "num_codebooks", "codes"))):
                codes[key] = torch.tensor(flat, dtype=torch.long).view(k, -1)
        return codes

    def write_shard(self, entries: dict[str, torch.Tensor]) -> Path:
        """Atomically adds one shard holding `entries` (key -> (K, T) codes), named after its own hash."""
        self.folder.mkdir(parents=True, exist_ok=True)
        numbers = [int(p.name.split("-")[1].split(".")[0]) for p in self.shards()]
        number = max(numbers, default=-1) + 1
        table = pa.table({
            "key": list(entries),
            "num_codebooks": [int(c.shape[0]) for c in entries.values()],
            "codes": [c.to(torch.int16).reshape(-1).tolist() for c in entries.values()],
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
