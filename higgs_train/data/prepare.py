"""From `data.*` + `task.*` config to encoded-ready training conversations, with a count of what was left out."""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from higgs_train.data.audio_checks import BadRow
from higgs_train.data.audio_codes import attach_codes
from higgs_train.data.conversations import DataError, dataset_root, is_prepared_dataset, load_rows
from higgs_train.data.row_checks import check_audio, check_text
from higgs_train.data.tasks import build_task
from higgs_train.logs import logger


@dataclass
class PreparedData:
    conversations: list[dict]
    skipped: dict[str, int] = field(default_factory=dict)
    codes: dict[str, int] = field(default_factory=dict)  # clips by origin: cached / encoded


def _speaker_descriptions(data_path: Path) -> dict[str, str]:
    """Optional `speakers.json` beside the data: speaker id -> description for multi-speaker scenes."""
    path = dataset_root(data_path) / "speakers.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _checked_rows(rows: list[dict], data_cfg, speakers: dict | None, decode_files: bool) -> tuple[list, dict]:
    """(rows that pass the checks `higgs-prep convert` makes, {reason: count} for the others); with on_bad_row=fail
    the first bad row raises. `decode_files=False` for prepared datasets, whose clips convert has decoded."""
    usable, skipped, examples = [], Counter(), []
    for row in rows:
        try:
            check_text(row["messages"], row.get("speaker"), speakers or None)
            check_audio(row["messages"], data_cfg.min_seconds, data_cfg.max_seconds, decode_files)
        except BadRow as error:
            if data_cfg.on_bad_row == "fail":
                raise DataError(f"row {row['id']}: {error}; fix it, or set data.on_bad_row=skip to leave such rows "
                                "out (`higgs-prep convert jsonl` lists every bad row)") from None
            skipped[error.reason] += 1
            examples.append(f"row {row['id']}: {error}")
            continue
        usable.append(row)
    if examples:
        logger.warning(f"left out {len(examples)} rows that fail the data checks ({dict(skipped)}; e.g. "
                       f"{'; '.join(examples[:3])}); `higgs-prep convert` lists every bad row")
    return usable, dict(skipped)


def prepare_conversations(data_cfg, task_name: str, seed: int, collator, audio_tokenizer,
                          show_progress: bool = True) -> PreparedData:
    path = Path(data_cfg.path)
    speakers = _speaker_descriptions(path)
    rows, bad_rows = _checked_rows(load_rows(path, data_cfg.max_examples), data_cfg, speakers,
                                   decode_files=not is_prepared_dataset(path))
    conversations, skipped = build_task(rows, task_name, seed, speakers)
    skipped.update(bad_rows)
    codes = attach_codes(conversations, audio_tokenizer, path, data_cfg.encode_batch_size, show_progress)
    kept, too_long = [], []
    for conversation in conversations:
        positions = collator.encode(conversation["messages"]).num_positions
        if positions <= data_cfg.max_positions:
            conversation["num_positions"] = positions
            kept.append(conversation)
        elif data_cfg.on_bad_row == "fail":
            raise DataError(f"row {conversation['id']}: {positions} positions exceed data.max_positions="
                            f"{data_cfg.max_positions}; raise it or set data.on_bad_row=skip")
        else:
            too_long.append(positions)
    if too_long:
        skipped[f"longer than data.max_positions={data_cfg.max_positions}"] = len(too_long)
        logger.warning(f"left out {len(too_long)} of {len(conversations)} conversations longer than "
            f"data.max_positions={data_cfg.max_positions} (never truncated; the shortest of them has "
            f"{min(too_long)} positions, the longest {max(too_long)})")
    if not kept:
        hint = f"; raise data.max_positions to at least {min(too_long)}" if too_long else ""
        raise DataError(f"{path}: no usable conversation for task={task_name} (left out: {skipped or 'none'}){hint}")
    return PreparedData(kept, skipped, codes)


def split_validation(conversations: list[dict], size: int, seed: int) -> tuple[list[dict], list[dict]]:
    """(training, validation): `size` conversations held out, chosen from the seed, both in their original order."""
    if size == 0:
        return conversations, []
    if size >= len(conversations):
        raise DataError(f"eval.val_size={size} would hold out all {len(conversations)} usable conversations; lower "
                        "it (eval.val_size=0 turns the validation split off)")
    held_out = set(random.Random(seed).sample(range(len(conversations)), size))
    return ([c for i, c in enumerate(conversations) if i not in held_out],
            [c for i, c in enumerate(conversations) if i in held_out])
