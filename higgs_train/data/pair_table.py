"""Preference pairs: for each prompt, a chosen and a rejected audio answer, in a memory-mapped table like the
training table's (`datasets` Arrow files), which `objective=dpo` trains on.

A pairs folder (written by `higgs-prep pairs` from the model's own judged samples, or by `pairs_from_jsonl` from a
user's files) holds:
- `pairs.arrow`: id, the prompt (messages as JSON; each audio item names its `clip`), the chosen and the rejected
  clip, whether each stopped on its own (a sample cut at the token limit is scored without a stop target), and
  every judge score of both (JSON);
- `clips.arrow`: each clip's int16 codes, as the training table keeps them;
- `pairs.json`: where the pairs came from (model, sampling, pairing rule, counts of what was left out and why);
- `reference-*.npy`: the reference model's log-probabilities of both answers, once computed (objective.reference=
  precomputed), keyed by the model that computed them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import torch

from higgs_train.data.audio_checks import BadRow
from higgs_train.data.audio_codes import encode_files
from higgs_train.data.code_cache import clip_identity, tokenizer_fingerprint
from higgs_train.data.conversations import DataError, jsonl_objects, validate
from higgs_train.data.row_checks import check_audio
from higgs_train.data.table import CLIPS_SCHEMA, clip_codes, codes_tensor, with_codes, write_arrow
from higgs_train.data.tasks.layout import last_user_text
from higgs_train.runtime import atomic, ownership
from higgs_train.runtime.logs import NOTICE, logger

PAIRS_SCHEMA = pa.schema([("id", pa.string()), ("prompt", pa.string()), ("chosen", pa.int32()),
                          ("rejected", pa.int32()), ("chosen_stopped", pa.bool_()), ("rejected_stopped", pa.bool_()),
                          ("scores", pa.string())])
FORMAT = 1
REFERENCE_FILES = ("reference-*.npy", ".reference-*.npy.partial-*")  # added to a pairs folder by objective=dpo
MAX_LINE_BYTES = 1024 ** 2  # a pairs line names its clips: one far longer is a mistake, read no further


def is_pairs_folder(path: str | Path) -> bool:
    return (Path(path) / "pairs.json").is_file()


def write_pairs(folder: Path, pairs: list[dict], clips: list[np.ndarray], info: dict) -> Path:
    """Writes a pairs folder atomically. Each pair: id, prompt (messages whose audio items name a `clip`), chosen,
    rejected (clip indices), chosen_stopped, rejected_stopped, scores."""
    with atomic.atomic_output(folder) as partial:
        partial.mkdir()
        write_arrow(partial / "clips.arrow", CLIPS_SCHEMA, [{
            "path": [None] * len(clips), "num_codebooks": [c.shape[0] for c in clips],
            "codes": [np.asarray(c, dtype=np.int16).reshape(-1) for c in clips],
            "bytes": [-1] * len(clips), "mtime_ns": [-1] * len(clips)}])
        columns = {name: [p[name] for p in pairs] for name in ("id", "chosen", "rejected", "chosen_stopped",
                                                                 "rejected_stopped")}
        columns["prompt"] = [json.dumps(p["prompt"], ensure_ascii=False) for p in pairs]
        columns["scores"] = [json.dumps(p["scores"]) for p in pairs]
        write_arrow(partial / "pairs.arrow", PAIRS_SCHEMA, [columns])
        (partial / "pairs.json").write_text(json.dumps({"format": FORMAT, "pairs": len(pairs), **info}, indent=2))
        ownership.mark(partial, "pairs", record_files=True)
    return Path(folder)


class PairTable:
    """A pairs folder, memory-mapped."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.rows = datasets.Dataset.from_file(str(self.folder / "pairs.arrow"))
        self.clips = datasets.Dataset.from_file(str(self.folder / "clips.arrow"))
        self.info = json.loads((self.folder / "pairs.json").read_text())

    def __len__(self) -> int:
        return len(self.rows)

    def _answer(self, prompt: list[dict], clip: int, stopped: bool) -> list[dict]:
        audio = {"type": "audio", "codes": codes_tensor(clip_codes(self.clips, clip)), "stopped": stopped}
        return [*prompt, {"role": "assistant", "content": [audio], "supervised": True}]

    def pair(self, index: int) -> dict:
        """{id, chosen, rejected, scores}: both answers as conversations (the prompt + the answer as target)."""
        row = {name: self.rows.data.column(name)[index].as_py() for name in PAIRS_SCHEMA.names}
        answers = {side: {"id": row["id"], "messages": self._answer(
            with_codes(json.loads(row["prompt"]), self.clips), row[side], row[f"{side}_stopped"])}
            for side in ("chosen", "rejected")}
        return {"id": row["id"], "scores": json.loads(row["scores"]), **answers}


def fitting_pairs(table: PairTable, collator, data_cfg) -> tuple[np.ndarray, dict[str, int]]:
    """The rows of the pairs whose both answers (with the prompt) fit `data.max_positions`, never truncated, and
    the counts of what was left out, by reason: a longer pair fails the run, or is skipped and counted
    (`data.on_bad_row`), as a training conversation is."""
    limit, known = data_cfg.max_positions, {}
    lengths = np.array([max(collator.count_positions(pair[side]["messages"], known) for side in ("chosen", "rejected"))
                        for pair in (table.pair(i) for i in range(len(table)))], dtype=np.int64)
    too_long = lengths > limit
    skipped = {"pair lines that fail the checks": len(table.info["left_out"])} if table.info.get("left_out") else {}
    if too_long.any():
        first = int(np.flatnonzero(too_long)[0])
        if data_cfg.on_bad_row != "skip" or too_long.all():
            more = f" (and {int(too_long.sum()) - 1} more)" if too_long.sum() > 1 else ""
            raise DataError(f"pair {table.pair(first)['id']}{more} of {table.folder}: {lengths[first]} positions "
                            f"exceed data.max_positions={limit}; raise data.max_positions to at least "
                            f"{lengths[too_long].min()}" + ("" if too_long.all() else
                                                            ", or set data.on_bad_row=skip to leave them out"))
        skipped[f"longer than data.max_positions={limit}"] = int(too_long.sum())
        logger.warning(f"left out {int(too_long.sum())} of {len(table)} pairs longer than data.max_positions={limit} "
                       f"(never truncated; the longest has {lengths.max()} positions)")
    return np.flatnonzero(~too_long), skipped


class PairDataset(torch.utils.data.Dataset):
    """Pairs `rows` of a table, with their reference log-probabilities (rows x 2: chosen, rejected) when computed."""

    def __init__(self, table: PairTable, rows: np.ndarray, reference: np.ndarray | None = None):
        self.table, self.rows, self.reference = table, rows, reference

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        pair = self.table.pair(int(self.rows[index]))
        if self.reference is not None:
            pair["reference"] = self.reference[index]
        return pair

    def subset(self, positions: np.ndarray) -> PairDataset:
        return PairDataset(self.table, self.rows[positions],
                           None if self.reference is None else self.reference[positions])

    def chosen(self) -> ChosenConversations:
        return ChosenConversations(self)


class ChosenConversations(torch.utils.data.Dataset):
    """The chosen answers as plain conversations: what validation and evaluation samples of a DPO run read."""

    def __init__(self, pairs: PairDataset):
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        return self.pairs[index]["chosen"]


class PairCollator:
    """A batch of B pairs as 2B padded rows (chosen_0, rejected_0, chosen_1, ...), with `reference_logps` (B, 2)
    when every pair has them."""

    def __init__(self, collator):
        self.collator = collator

    def __call__(self, pairs: list[dict]) -> dict[str, torch.Tensor]:
        batch = self.collator([answer for pair in pairs for answer in (pair["chosen"], pair["rejected"])])
        if all("reference" in pair for pair in pairs):
            batch["reference_logps"] = torch.tensor(np.stack([pair["reference"] for pair in pairs]),
                                                    dtype=torch.float32)
        return batch


def _pair_row(record: dict, where: str, folder: Path, data_cfg) -> tuple[dict, str, str]:
    """(the prompt as a conversation row, chosen path, rejected path) of one JSONL line, checked as training data
    is: the prompt must say something, each clip must pass the audio checks, and the two must differ."""
    for key in ("chosen", "rejected"):
        if not isinstance(record.get(key), str) or not record[key]:
            raise DataError(f"{where}: '{key}' must be the path of an audio file")
    chosen, rejected = ((folder / record[k]).resolve() for k in ("chosen", "rejected"))
    messages = record.get("messages")
    if not isinstance(messages, list) or not last_user_text(messages if all(isinstance(m, dict) for m in messages)
                                                            else []):
        raise DataError(f"{where}: the prompt is empty; 'messages' must hold the prompt conversation (system, scene, "
                        "user text) that the answers reply to")
    row = {"id": str(record.get("id", where)), "messages": [
        *messages, {"role": "assistant", "content": [{"type": "audio", "path": str(chosen)}]}]}
    validate(row, where)
    for message in row["messages"]:
        for item in message["content"]:
            if item["type"] == "audio" and "path" in item:
                item["path"] = str((folder / item["path"]).resolve())
    if chosen == rejected or (chosen.is_file() and rejected.is_file() and
                              _digest(chosen) == _digest(rejected)):
        raise DataError(f"{where}: chosen and rejected are the same clip ({record['chosen']}); a pair needs two "
                        "different answers")
    probe = [{"role": "assistant", "content": [{"type": "audio", "path": str(p)}]} for p in (chosen, rejected)]
    try:
        check_audio(row["messages"][:-1] + probe, data_cfg.min_seconds, data_cfg.max_seconds)
    except BadRow as error:
        raise DataError(f"{where}: {error}; fix the pair (the same checks as training data)") from None
    return row, str(chosen), str(rejected)


def _digest(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def pairs_from_jsonl(path: str | Path, audio_tokenizer, data_cfg) -> Path:
    """A pairs folder from a JSONL of `{"id", "messages": [the prompt], "chosen": "a.wav", "rejected": "b.wav"}`
    (paths relative to the file), beside it under `codes/<tokenizer>/pairs-<key>/`, built once: the key hashes the
    file, its clips' sizes and times, and the checks' settings."""
    path = Path(path)
    lines = [(where, record) for _, where, record in jsonl_objects(path, MAX_LINE_BYTES)]
    if not lines:
        raise DataError(f"{path}: holds no pair")
    checked, refused = _checked_pairs(lines, path, data_cfg)
    clips = sorted({p for row, chosen, rejected in checked for p in (chosen, rejected, *(
        i["path"] for m in row["messages"][:-1] for i in m["content"] if i["type"] == "audio"))})
    checks = [data_cfg.min_seconds, data_cfg.max_seconds, data_cfg.on_bad_row]
    key = hashlib.sha256(json.dumps([clip_identity(path), [clip_identity(c) for c in clips], checks]).encode()
                         ).hexdigest()[:16]
    folder = path.parent / "codes" / tokenizer_fingerprint(audio_tokenizer) / f"pairs-{path.stem}-{key}"
    if is_pairs_folder(folder):
        return folder
    codes = dict(encode_files(audio_tokenizer, clips))
    index = {clip: position for position, clip in enumerate(clips)}
    pairs = []
    for row, chosen, rejected in checked:
        prompt = row["messages"][:-1]
        for message in prompt:
            for item in message["content"]:
                if item["type"] == "audio":
                    item["clip"] = index[item.pop("path")]
        pairs.append({"id": row["id"], "prompt": prompt, "chosen": index[chosen], "rejected": index[rejected],
                      "chosen_stopped": True, "rejected_stopped": True, "scores": {}})
    return write_pairs(folder, pairs, [codes[c].numpy() for c in clips],
                       {"source": str(path.resolve()), "made_by": "pairs_from_jsonl", "left_out": refused})


def _checked_pairs(lines: list[tuple[str, dict]], path: Path, data_cfg) -> tuple[list[tuple], list[str]]:
    """The pairs that pass the checks, and why each other line was left out (data.on_bad_row=skip; with fail, or
    when none is left, one error counting and naming them). Ids must differ: a pair is reported by its id."""
    checked, refused, seen = [], [], {}
    for where, record in lines:
        try:
            row = _pair_row(record, where, path.parent, data_cfg)
            if row[0]["id"] in seen:
                raise DataError(f"{where}: id {row[0]['id']!r} is also the id of {seen[row[0]['id']]}; give each "
                                "pair its own")
            seen[row[0]["id"]] = where
            checked.append(row)
        except DataError as error:
            refused.append(str(error))
    skipping = data_cfg.on_bad_row == "skip"
    if refused and (not skipping or not checked):
        skip = ", or set data.on_bad_row=skip to leave it out" if checked else ""
        if len(refused) == 1:
            raise DataError(f"{refused[0]}; fix or remove the pair{skip}")
        more = f"; and {len(refused) - 3} more" if len(refused) > 3 else ""
        raise DataError(f"{path}: {len(refused)} of {len(lines)} pairs cannot be trained on: "
                        f"{'; '.join(refused[:3])}{more}; fix or remove them{skip.replace(' it ', ' them ')}")
    if refused:
        logger.log(NOTICE, f"left out {len(refused)} of {len(lines)} pairs of {path} (data.on_bad_row=skip; listed "
                   f"in pairs.json): {'; '.join(refused[:3])}{' ...' if len(refused) > 3 else ''}")
    return checked, refused


def open_pairs(path: str | Path, audio_tokenizer, data_cfg) -> PairTable:
    """`data.pairs`: a pairs folder, or a pairs JSONL (made into a folder on first use)."""
    path = Path(path)
    if is_pairs_folder(path):
        try:
            return PairTable(path)
        except Exception as error:  # noqa: BLE001 - a damaged or foreign folder: one line, not Arrow's traceback
            raise DataError(f"data.pairs={path} cannot be read ({type(error).__name__}: {str(error)[:200]}); write "
                            "it again with `higgs-prep pairs --out`") from None
    if path.is_file():
        return PairTable(pairs_from_jsonl(path, audio_tokenizer, data_cfg))
    raise DataError(f"data.pairs={path} is neither a pairs folder (higgs-prep pairs --out) nor a pairs JSONL")
