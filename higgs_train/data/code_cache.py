"""Audio codes on disk, beside the dataset: `codes/<tokenizer fingerprint>/shard-NNNNN.arrow`.

The fingerprint hashes the audio tokenizer's config and weights, so codes made by another tokenizer are never reused.
Each shard is written under a temporary name and renamed when complete; a partial shard is never read, so an
interrupted `higgs-prep encode` resumes with only the missing clips.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pyarrow as pa
import torch

from higgs_train import atomic

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


class CodeCache:
    """The codes of one dataset root under one audio tokenizer; keys are clip paths relative to the root."""

    def __init__(self, root: str | Path, fingerprint: str):
        self.root = Path(root)
        self.folder = self.root / "codes" / fingerprint

    def key(self, path: str | Path) -> str:
        return Path(os.path.relpath(path, self.root)).as_posix()

    def shards(self) -> list[Path]:
        return sorted(self.folder.glob(SHARD_GLOB))

    def load(self) -> dict[str, torch.Tensor]:
        """Every cached clip: key -> (K, T) long codes."""
        codes = {}
        for shard in self.shards():
            with pa.memory_map(str(shard)) as source:
                table = pa.ipc.open_file(source).read_all()
            for key, k, flat in zip(*(table.column(name).to_pylist() for name in ("key", "num_codebooks", "codes"))):
                codes[key] = torch.tensor(flat, dtype=torch.long).view(k, -1)
        return codes

    def write_shard(self, entries: dict[str, torch.Tensor]) -> Path:
        """Atomically adds one shard holding `entries` (key -> (K, T) codes)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        number = len(self.shards())
        final = self.folder / f"shard-{number:05d}.arrow"
        table = pa.table({
            "key": list(entries),
            "num_codebooks": [int(c.shape[0]) for c in entries.values()],
            "codes": [c.to(torch.int16).reshape(-1).tolist() for c in entries.values()],
        }, schema=SCHEMA)
        with atomic.atomic_output(final, unique=True) as partial:
            with pa.OSFile(str(partial), "wb") as sink, pa.ipc.new_file(sink, SCHEMA) as writer:
                writer.write_table(table)
        return final
