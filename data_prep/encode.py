"""`higgs-prep encode`: run the audio tokenizer over every clip of a dataset once and store the codes beside it.

Resumable: shards are committed atomically every `shard_size` clips, and a re-run encodes only the clips that no
complete shard holds. Training then reads the codes instead of encoding (`higgs_train.data.audio_codes`).

Under a launcher (`torchrun --nproc_per_node N -m data_prep.cli encode ...`, `accelerate launch`, several nodes on
a shared file system) each process takes every N-th clip of the sorted list, whatever the others have done, and
writes its own shards; no process waits for another, so one that dies costs only its unfinished shard, and a re-run
encodes what is missing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from higgs_train.data.audio_codes import encode_files
from higgs_train.data.code_cache import CodeCache, clip_identity, tokenizer_fingerprint
from higgs_train.data.conversations import dataset_root, load_rows
from higgs_train.runtime import atomic
from higgs_train.runtime.logs import logger


def encode_dataset(data_path: str | Path, audio_tokenizer, batch_size: int = 8, shard_size: int = 256) -> dict:
    """Encodes the dataset's clips that the cache lacks; returns counts, the cache folder and the clips that could
    not be read (skipped and listed, so one bad file never costs the rest)."""
    rows = load_rows(data_path)
    cache = CodeCache(dataset_root(data_path), tokenizer_fingerprint(audio_tokenizer),
                      audio_tokenizer.config.codebook_size)
    paths = sorted({item["path"] for row in rows for message in row["messages"] for item in message["content"]
                    if item["type"] == "audio" and "path" in item})
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    mine = paths[rank::world]  # from the whole list, so the split never depends on what is cached already
    cached = cache.fresh(mine)
    missing = [path for path in mine if path not in cached]
    identities = {cache.key(path): clip_identity(path) for path in missing}  # before the clips are read
    for stale in atomic.remove_stale_partials(cache.folder / "shard-*.arrow"):
        logger.info(f"removed {stale}, left by an encode that did not finish")
    pending, unreadable = {}, {}
    for path, codes in encode_files(audio_tokenizer, missing, batch_size, unreadable):
        pending[cache.key(path)] = codes
        if len(pending) >= shard_size:
            cache.write_shard(pending, identities)
            pending = {}
    if pending:
        cache.write_shard(pending, identities)
    if unreadable:
        logger.warning(f"skipped {len(unreadable)} clips that cannot be read (listed under \"unreadable\"); fix "
                       "or remove them and run encode again, which encodes only what is missing")
    counts = {"clips": len(mine), "already_cached": len(mine) - len(missing), "encoded": len(missing) - len(unreadable)}
    share = {"process": f"{rank} of {world}", "dataset_clips": len(paths)} if world > 1 else {}
    report = {**counts, **share, "unreadable": unreadable, "cache": str(cache.folder)}
    if cache.folder.is_dir():  # for scripts: the numbers of the last encode, beside its shards
        atomic.write_text(cache.folder / f"encode_report{f'-{rank}' if world > 1 else ''}.json",
                          json.dumps(report, indent=2))
    return report
