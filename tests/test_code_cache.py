"""The audio-code cache: exact batching, reuse only under the same tokenizer, and resume after a hard kill."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pytest
import soundfile as sf
import torch
from omegaconf import OmegaConf

from data_prep.encode import encode_dataset
from higgs_train.builtins.random_checkpoint import build_audio_tokenizer
from higgs_train.data.audio import load_audio
from higgs_train.data.audio_codes import attach_codes, encode_files, encode_waveform
from higgs_train.data.code_cache import CodeCache, tokenizer_fingerprint
from higgs_train.data.conversations import load_rows
from higgs_train.data.table_build import open_table


@pytest.fixture
def demo_copy(demo_dir, tmp_path):
    """A private copy of the demo data without its codes, so caches written here never reach other tests."""
    shutil.copytree(demo_dir, tmp_path / "demo", ignore=shutil.ignore_patterns("codes"))
    return tmp_path / "demo"


def _codes_by_path(rows):
    return {item["path"]: item["codes"] for row in rows for m in row["messages"] for item in m["content"]
            if item["type"] == "audio"}


def test_batches_join_only_equal_lengths_and_equal_one_at_a_time_codes(demo_copy, processor, tmp_path):
    tokenizer = processor.audio_tokenizer
    clips = sorted((demo_copy / "clips").glob("*.wav"))[:4]
    shortest = min(len(load_audio(c)) for c in clips)
    paths = []
    for index, clip in enumerate(clips):  # three clips cut to one length (batched together), one left as it is
        waveform = load_audio(clip)
        path = tmp_path / f"c{index}.wav"
        sf.write(path, waveform if index == 3 else waveform[:shortest], 24000, subtype="FLOAT")
        paths.append(str(path))
    batched = dict(encode_files(tokenizer, paths, batch_size=8))
    for path in paths:
        assert torch.equal(batched[path], encode_waveform(tokenizer, load_audio(path)))


def _table(path, tokenizer, **overrides):
    values = {"path": str(path), "max_examples": None, "min_seconds": 0.3, "max_seconds": 30.0, "on_bad_row": "fail",
              "encode_batch_size": 8}
    return open_table(path, OmegaConf.create({**values, **overrides}), tokenizer)


def _table_codes(table):
    """path -> codes of every clip file in the training table."""
    return {item["path"]: item["codes"] for index in range(len(table)) for m in table.row(index)["messages"]
            for item in m["content"] if item["type"] == "audio"}


@pytest.mark.slow  # encodes the whole demo set into a fresh table
def test_training_reads_the_cache_and_gets_the_codes_it_would_encode(demo_copy, processor):
    tokenizer = processor.audio_tokenizer
    summary = encode_dataset(demo_copy / "train.jsonl", tokenizer, shard_size=10)
    assert summary["encoded"] == summary["clips"] == 28 and summary["already_cached"] == 0
    assert encode_dataset(demo_copy / "train.jsonl", tokenizer)["encoded"] == 0

    table = _table(demo_copy / "train.jsonl", tokenizer)
    assert table.built and table.info["codes"] == {"cached": 28, "encoded": 0}
    again = _table(demo_copy / "train.jsonl", tokenizer)
    assert not again.built and again.folder == table.folder  # the second start reads what the first built
    from_cache = _table_codes(again)
    on_the_fly = load_rows(demo_copy / "train.jsonl")
    attach_codes(on_the_fly, tokenizer)
    fresh = _codes_by_path(on_the_fly)
    assert from_cache.keys() == fresh.keys() and all(torch.equal(from_cache[p], fresh[p]) for p in fresh)


@pytest.mark.slow  # encodes the whole demo set into a fresh table
def test_another_tokenizer_never_reuses_the_codes(demo_copy, processor):
    encode_dataset(demo_copy / "train.jsonl", processor.audio_tokenizer)
    _table(demo_copy / "train.jsonl", processor.audio_tokenizer, max_examples=2)
    other = build_audio_tokenizer(seed=1)
    assert tokenizer_fingerprint(other) != tokenizer_fingerprint(processor.audio_tokenizer)
    table = _table(demo_copy / "train.jsonl", other, max_examples=2)
    assert table.info["codes"] == {"cached": 0, "encoded": 2}
    for path, codes in _table_codes(table).items():
        assert torch.equal(codes, encode_waveform(other, load_audio(path)))


@pytest.mark.slow  # encodes the whole demo set into a fresh table
def test_a_clip_edited_after_it_was_encoded_is_encoded_again(demo_copy, processor):
    tokenizer = processor.audio_tokenizer
    encode_dataset(demo_copy / "train.jsonl", tokenizer)
    built = _table(demo_copy / "train.jsonl", tokenizer, max_examples=2)
    edited = built.row(0)["messages"][-1]["content"][0]["path"]
    waveform, rate = sf.read(edited, dtype="float32")
    sf.write(edited, waveform[::-1].copy(), rate)  # re-recorded: same path, same size, new content
    table = _table(demo_copy / "train.jsonl", tokenizer, max_examples=2)  # training without encoding first
    assert table.built and table.info["codes"] == {"cached": 1, "encoded": 1}
    assert torch.equal(_table_codes(table)[edited], encode_waveform(tokenizer, load_audio(edited)))
    again = encode_dataset(demo_copy / "train.jsonl", tokenizer)
    assert again["encoded"] == 1 and again["already_cached"] == 27


def _shard_keys(folder):
    keys = []
    for shard in sorted(folder.glob("shard-*.arrow")):
        with pa.memory_map(str(shard)) as source:
            keys += pa.ipc.open_file(source).read_all().column("key").to_pylist()
    return keys


@pytest.mark.slow
def test_killed_encode_resumes_to_the_cache_of_an_uninterrupted_run(demo_copy, tiny_checkpoint, processor, tmp_path):
    uninterrupted = tmp_path / "clean"
    shutil.copytree(demo_copy, uninterrupted)
    encode_dataset(uninterrupted / "train.jsonl", processor.audio_tokenizer, shard_size=1)

    command = [sys.executable, "-m", "data_prep.cli", "encode", "--data", str(demo_copy / "train.jsonl"),
               "--model", str(tiny_checkpoint), "--shard-size", "1", "--batch-size", "1"]
    cache = CodeCache(demo_copy, tokenizer_fingerprint(processor.audio_tokenizer))
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "PYTHONPATH": os.getcwd()})
    while len(cache.shards()) < 3 and process.poll() is None:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_at_kill = len(cache.shards())
    assert 3 <= done_at_kill < 28, "the kill must land midway for this test to mean anything"
    (cache.folder / ".shard-00099.arrow.partial-1").write_bytes(b"torn write")  # a shard cut off mid-write

    resumed = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert resumed.returncode == 0, resumed.stderr
    assert f"({done_at_kill} were cached already)" in resumed.stdout  # the summary in words
    assert json.loads((cache.folder / "encode_report.json").read_text())["already_cached"] == done_at_kill
    keys = _shard_keys(cache.folder)
    assert len(keys) == len(set(keys)) == 28  # no clip encoded twice
    expected = CodeCache(uninterrupted, cache.folder.name).load()
    got = cache.load()
    assert got.keys() == expected.keys() and all(np.array_equal(got[k], expected[k]) for k in got)


@pytest.mark.slow
def test_two_encode_processes_give_the_one_process_cache_even_when_one_dies(demo_copy, tiny_checkpoint, processor,
                                                                            tmp_path):
    """What `torchrun --nproc_per_node 2 -m data_prep.cli encode ...` runs: two processes told their RANK."""
    uninterrupted = tmp_path / "clean"
    shutil.copytree(demo_copy, uninterrupted)
    encode_dataset(uninterrupted / "train.jsonl", processor.audio_tokenizer, shard_size=4)
    command = [sys.executable, "-m", "data_prep.cli", "encode", "--data", str(demo_copy / "train.jsonl"),
               "--model", str(tiny_checkpoint), "--shard-size", "1", "--batch-size", "1"]

    def launch(rank):
        env = {**os.environ, "PYTHONPATH": os.getcwd(), "RANK": str(rank), "LOCAL_RANK": str(rank),
               "WORLD_SIZE": "2"}
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)

    def report(rank):  # each process's numbers, in the file beside the shards
        return json.loads((cache.folder / f"encode_report-{rank}.json").read_text())

    cache = CodeCache(demo_copy, tokenizer_fingerprint(processor.audio_tokenizer))
    first, second = launch(0), launch(1)
    while len(cache.shards()) < 4 and second.poll() is None:
        time.sleep(0.005)
    second.send_signal(signal.SIGKILL)  # one process dies midway; the other finishes its share
    second.wait()
    assert first.wait(timeout=300) == 0 and report(0)["process"] == "0 of 2"
    assert len(cache.load()) < 28, "the kill must land before the second process is done"

    for process in (launch(0), launch(1)):
        assert process.wait(timeout=300) == 0
    reports = [report(0), report(1)]
    assert reports[0]["encoded"] == 0 and reports[1]["encoded"] > 0  # only the dead process's clips were missing
    assert sum(r["clips"] for r in reports) == 28
    expected, got = CodeCache(uninterrupted, cache.folder.name).load(), cache.load()
    assert got.keys() == expected.keys() and all(np.array_equal(got[k], expected[k]) for k in got)
