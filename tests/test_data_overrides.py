"""Corrections kept beside a dataset (`overrides.jsonl`, what higgs-studio's Data page writes) reach training: a
corrected transcript is the training row's text, a rejected clip has no training row, and its audio stays on disk."""

from __future__ import annotations

import shutil

import pytest
from omegaconf import OmegaConf

from higgs_train.data.conversations import DataError, load_rows
from higgs_train.data.overrides import append_override
from higgs_train.data.table_build import open_table


def _training_rows(path, tokenizer) -> dict[str, str]:
    """id -> transcript of each row of the training table built for `path`."""
    cfg = OmegaConf.create({"path": str(path), "max_examples": None, "min_seconds": 0.3, "max_seconds": 30.0,
                            "on_bad_row": "fail", "encode_batch_size": 8})
    table = open_table(cfg.path, cfg, tokenizer)
    rows = [table.row(i, tensors=False) for i in range(len(table))]
    return {r["id"]: [m for m in r["messages"] if m["role"] == "user"][-1]["content"][0]["text"] for r in rows}


def test_corrections_reach_the_training_rows_and_a_reject_leaves_its_audio(demo_dir, processor, tmp_path, caplog):
    shutil.copytree(demo_dir, tmp_path / "demo")  # with its cached codes: nothing is encoded again
    data = tmp_path / "demo" / "train.jsonl"
    before = _training_rows(data, processor.audio_tokenizer)
    assert before["alice_00"] == "The sun rises in the east." and "alice_01" in before

    append_override(data.parent, "alice_00", text="The sun rises in the far east.")
    append_override(data.parent, "alice_01", rejected=True)
    caplog.set_level("INFO", logger="higgs_train")
    after = _training_rows(data, processor.audio_tokenizer)
    assert "overrides.jsonl: 1 rows left out as rejected, 1 transcripts corrected" in caplog.text  # said, not silent
    assert after["alice_00"] == "The sun rises in the far east."
    assert "alice_01" not in after and len(after) == len(before) - 1
    assert (data.parent / "clips" / "alice_01.wav").is_file()

    append_override(data.parent, "alice_01", rejected=False)  # restored by a later line
    assert "alice_01" in _training_rows(data, processor.audio_tokenizer)


def test_a_bad_overrides_line_is_one_error_naming_it(tmp_path, demo_dir):
    shutil.copytree(demo_dir, tmp_path / "demo", ignore=shutil.ignore_patterns("codes"))
    (tmp_path / "demo" / "overrides.jsonl").write_text('{"id": "alice_00", "text": "  "}\n')
    with pytest.raises(DataError, match=r"overrides.jsonl:1: \"text\" must be a non-empty transcript"):
        load_rows(tmp_path / "demo" / "train.jsonl")
