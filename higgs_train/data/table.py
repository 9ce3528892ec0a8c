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
(checks, cached or newly encoded codes, with progress bars) under a temporary name and renames it when complete
(`table_build.py`); where it lives and its key are `table_place.py`'s. This module reads a built table.
"""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import torch

from higgs_train.data.code_cache import clip_identity

FORMAT = 1
ROWS_SCHEMA = pa.schema([("id", pa.string()), ("speaker", pa.string()), ("messages", pa.string())])
CLIPS_SCHEMA = pa.schema([("path", pa.string()), ("num_codebooks", pa.int32()), ("codes", pa.list_(pa.int16())),
                          ("bytes", pa.int64()), ("mtime_ns", pa.int64())])
WRITE_BATCH = 4096  # clips per Arrow record batch


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


def write_arrow(path: Path, schema: pa.Schema, batches) -> None:
    """An Arrow stream file of `schema` from an iterable of column dicts, which `datasets` memory-maps."""
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        for batch in batches:
            writer.write_table(pa.table(batch, schema=schema))
