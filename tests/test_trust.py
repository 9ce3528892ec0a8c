"""The trust catalog: a careful user's mistakes and a bad day's faults, each reproduced. No tool deletes what it did
not write, nothing trains on stale or broken data without a word, and every case is one line, never a traceback.
Numbers are the cases of the issue that listed them (README "When things go wrong" has the messages). The cases
that need a trained run live beside their kin: resume and preemption in test_resume.py, a full disk under
higgs-train and higgs-export in test_export_generate.py."""

import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest
import soundfile as sf
import torch
from omegaconf import OmegaConf

from data_prep.cli import main as prep_main
from data_prep.convert import ConvertError, convert
from data_prep.encode import encode_dataset
from higgs_train.commands.export import export
from higgs_train.config import ConfigError, run_config
from higgs_train.config.files import CONFIG_DIR
from higgs_train.data.code_cache import CodeCache, tokenizer_fingerprint
from higgs_train.data.collator import ConversationCollator
from higgs_train.data.conversations import DataError, load_rows
from higgs_train.data.loader import task_conversations
from higgs_train.runtime import ownership
from higgs_train.runtime.errors import TrainingError, UserError
from higgs_train.runtime.run_lock import hold_run_dir
from higgs_train.train.checkpoint import damage, newest_intact_checkpoint
from higgs_train.train.resumable import ResumeError, check_resumable, resume_record, run_signature
from higgs_train.train.run_dir import RunDirError, RunFinished, claim_run_dir


def _tree(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---- 1-3, 16: deletes only what it wrote ---------------------------------------------------------------------------
@pytest.mark.parametrize("resume, overwrite", [("auto", False), (None, True)])
def test_01_a_folder_that_is_not_a_run_is_never_cleared(tmp_path, resume, overwrite):
    for name in ("model", "adapter", "samples"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "precious.bin").write_bytes(b"user data")
    (tmp_path / "metrics.jsonl").write_text('{"mine": 1}\n')
    before = _tree(tmp_path)
    with pytest.raises(RunDirError, match="never deletes or continues what it cannot recognise"):
        claim_run_dir(tmp_path, resume, overwrite, 10, is_main=True)
    assert _tree(tmp_path) == before


def test_01_resume_auto_on_a_finished_run_without_checkpoints_keeps_it(tmp_path):
    ownership.mark(tmp_path, "run")
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_model.safetensors").write_bytes(b"weights")
    (tmp_path / "run_summary.json").write_text(json.dumps({"steps": 20}))
    before = _tree(tmp_path)
    with pytest.raises(RunFinished, match="already finished at step 20"):
        claim_run_dir(tmp_path, "auto", False, 20, is_main=True)
    with pytest.raises(RunDirError, match="saved no checkpoint to continue from"):
        claim_run_dir(tmp_path, "auto", False, 40, is_main=True)
    assert _tree(tmp_path) == before


def test_01_resume_auto_restarts_an_own_run_that_died_before_its_first_checkpoint(tmp_path):
    ownership.mark(tmp_path, "run")
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n')
    (tmp_path / "notes.txt").write_text("the user's")
    assert claim_run_dir(tmp_path, "auto", False, 10, is_main=True) is None
    assert not (tmp_path / "metrics.jsonl").exists() and (tmp_path / "notes.txt").read_text() == "the user's"


def test_02_export_never_empties_a_folder_it_did_not_write(tmp_path):
    out = tmp_path / "my_models"
    out.mkdir()
    (out / "other_model.safetensors").write_bytes(b"someone's weights")
    with pytest.raises(UserError, match="holds files that higgs-train did not write"):
        export(tmp_path / "any_run", out=out)  # refused before anything loads
    assert (out / "other_model.safetensors").read_bytes() == b"someone's weights"


def _two_demo_rows(demo_dir, folder):
    """The first two demo rows, their clips copied to `folder/clips/`."""
    (folder / "clips").mkdir(parents=True)
    rows = [json.loads(line) for line in (demo_dir / "train.jsonl").read_text().splitlines()[:2]]
    for row in rows:
        item = row["messages"][-1]["content"][0]
        shutil.copy(demo_dir / item["path"], folder / item["path"])
    return rows


@pytest.fixture
def jsonl_source(tmp_path, demo_dir):
    """A conversation JSONL with two real clips beside it."""
    source = tmp_path / "src"
    rows = _two_demo_rows(demo_dir, source)
    (source / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return source, rows


def test_03_convert_never_replaces_a_folder_holding_its_input(jsonl_source):
    source, _ = jsonl_source
    before = _tree(source)
    with pytest.raises(ConvertError, match="holds the input"):
        convert("jsonl", source / "train.jsonl", source, overwrite=True)
    assert _tree(source) == before


def test_16_a_killed_conversion_leaves_nothing_after_the_next_one(jsonl_source, tmp_path):
    source, _ = jsonl_source
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".out.partial-{socket.gethostname()}-{dead.pid}"
    (stale / "clips").mkdir(parents=True)
    (stale / "clips" / "half.flac").write_bytes(b"x" * 1000)
    writer = subprocess.Popen(["sleep", "60"])  # a writer still running: its partial is left alone
    live = tmp_path / f".out.partial-{socket.gethostname()}-{writer.pid}"
    elsewhere = tmp_path / f".out.partial-another-node-{dead.pid}"  # a writer on another machine of a shared disk
    elsewhere.mkdir()
    live.mkdir()
    try:
        convert("jsonl", source / "train.jsonl", tmp_path / "out")
    finally:
        writer.kill()
    assert not stale.exists() and live.exists() and elsewhere.exists() and len(load_rows(tmp_path / "out")) == 2


# ---- 4, 5, 13: no silent stale or broken data ----------------------------------------------------------------------
def _bad_rows_folder(tmp_path, demo_dir):
    """Six rows: two good, then NaN, silent, 10 ms, empty-transcript audio; speakers.json lists both demo voices."""
    folder = tmp_path / "bad"
    rows = _two_demo_rows(demo_dir, folder)
    template = rows[0]
    clips = {"nan": np.full(24000, np.nan, np.float32), "silent": np.zeros(24000, np.float32),
             "short": 0.5 * np.ones(240, np.float32)}
    for name, samples in clips.items():
        with np.errstate(invalid="ignore"):
            sf.write(folder / "clips" / f"{name}.wav", samples, 24000, subtype="FLOAT")
        row = json.loads(json.dumps(template))
        row["id"] = name
        row["messages"][-1]["content"][0]["path"] = f"clips/{name}.wav"
        rows.append(row)
    empty = json.loads(json.dumps(template))
    empty["id"] = "empty"
    empty["messages"][2]["content"][0]["text"] = "  "
    stranger = json.loads(json.dumps(template))
    stranger["id"], stranger["speaker"] = "stranger", "nobody"
    rows += [empty, stranger]
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    shutil.copy(demo_dir / "speakers.json", folder / "speakers.json")
    return folder


def _data_cfg(path, **overrides):
    cfg = OmegaConf.merge(OmegaConf.load(CONFIG_DIR / "data" / "jsonl.yaml"), overrides)
    cfg.path = str(path)
    return cfg


def test_04_training_from_jsonl_makes_the_checks_convert_makes(tmp_path, demo_dir, processor, model_config):
    folder = _bad_rows_folder(tmp_path, demo_dir)
    collator = ConversationCollator(processor.tokenizer, model_config)
    data = folder / "train.jsonl"
    conversations, skipped = task_conversations(data, _data_cfg(data, on_bad_row="skip"), "multi_speaker", 0, collator,
                                                processor.audio_tokenizer)
    ids = [conversations[i]["id"] for i in range(len(conversations))]
    assert ids == [r["id"] for r in load_rows(folder / "train.jsonl")[:2]]
    assert skipped == {"non-finite samples (NaN or inf)": 1, "silent audio": 1, "duration out of range": 1,
                                "empty transcript": 1, "unknown speaker": 1}
    with pytest.raises(DataError, match=r"^row nan: non-finite samples .*nan.wav.*data.on_bad_row=skip"):
        task_conversations(data, _data_cfg(data, on_bad_row="fail"), "multi_speaker", 0, collator,
                           processor.audio_tokenizer)


def test_05_convert_clip_names_never_collide(tmp_path, demo_dir):
    source = tmp_path / "src"
    (source / "clips").mkdir(parents=True)
    template = json.loads((demo_dir / "train.jsonl").read_text().splitlines()[0])
    paths = sorted((demo_dir / "clips").iterdir())[:5]
    for path in paths:
        shutil.copy(path, source / "clips" / path.name)

    def row(row_id, *clips):
        value = json.loads(json.dumps(template))
        value["id"] = row_id
        value["messages"][-1]["content"] = [{"type": "audio", "path": f"clips/{p.name}"} for p in clips]
        return value

    rows = [row("x", paths[0], paths[1]), row("x-0", paths[2]), row("a b", paths[3]), row("a_b", paths[4])]
    (source / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = convert("jsonl", source / "train.jsonl", tmp_path / "out")
    assert report["kept"] == 4 and report["rejected"] == 0
    written = [item["path"] for r in load_rows(tmp_path / "out") for m in r["messages"] for item in m["content"]
               if item["type"] == "audio"]
    assert len(set(written)) == 5
    for path, original in zip(written, [paths[0], paths[1], paths[2], paths[3], paths[4]]):
        assert sf.info(path).frames == sf.info(original).frames  # each clip is the row's own


def test_13_non_utf8_bytes_and_non_object_items_name_the_line(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_bytes(b'\n\xff\xfe{"messages": 1}\n')
    with pytest.raises(DataError, match=r"train.jsonl:2: not UTF-8 text \(byte 0xff at column 1\)"):
        load_rows(path)
    path.write_text(json.dumps({"messages": [{"role": "system", "content": ["just a string"]}]}) + "\n")
    with pytest.raises(DataError, match=r"train.jsonl:1: messages\[0\].content holds a str, not an item object"):
        load_rows(path)


def test_13_encode_skips_and_lists_unreadable_clips(jsonl_source, processor):
    source, rows = jsonl_source
    (source / "clips" / "broken.wav").write_bytes(b"RIFF but not audio")
    extra = []
    for name in ("gone.wav", "broken.wav"):
        row = json.loads(json.dumps(rows[0]))
        row["messages"][-1]["content"][0]["path"] = f"clips/{name}"
        extra.append(row)
    (source / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [*rows, *extra]))
    report = encode_dataset(source / "train.jsonl", processor.audio_tokenizer)
    assert report["encoded"] == 2 and sorted(os.path.basename(p) for p in report["unreadable"]) == \
        ["broken.wav", "gone.wav"]
    assert report["unreadable"][str(source / "clips" / "gone.wav")] == "missing audio file"
    cache = CodeCache(source, tokenizer_fingerprint(processor.audio_tokenizer))
    assert len(cache.load()) == 2


# ---- 7, 8, 15: settings --------------------------------------------------------------------------------------------
def _saved_state(cfg):
    return {"signature": run_signature(cfg, 1), **resume_record(cfg)}


def test_07_resume_refuses_a_changed_optimizer_or_data_and_says_what_it_applies(compose_config, tmp_path, caplog):
    data = tmp_path / "train.jsonl"
    data.write_text('{"messages": []}\n')
    base = ["recipe=smoke", f"data.path={data}"]
    saved = _saved_state(compose_config(*base))
    with pytest.raises(ResumeError, match="optim.lr was 0.002 there and is 0.01 now"):
        check_resumable(saved, compose_config(*base, "optim.lr=0.01"), 1, tmp_path)
    with pytest.raises(ResumeError, match="optim.scheduler was 'constant' there and is 'cosine' now"):
        check_resumable(saved, compose_config(*base, "optim.scheduler=cosine"), 1, tmp_path)
    caplog.set_level("INFO", logger="higgs_train")
    check_resumable(saved, compose_config(*base, "trainer.max_steps=40", "resume=auto"), 1, tmp_path)
    assert "applied from here on: trainer.max_steps 20 -> 40" in caplog.text and "resume" not in caplog.text
    data.write_text('{"messages": [1]}\n')  # same path, new content
    with pytest.raises(ResumeError, match=f"the data at data.path={data} changed"):
        check_resumable(saved, compose_config(*base), 1, tmp_path)


@pytest.mark.parametrize("override, says", [
    ("optim.lr=inf", "optim.lr=inf must be a finite number > 0"),
    ("optim.lr=nan", "optim.lr=nan must be a finite number > 0"),
    ("optim.lr=abc", "optim.lr='abc' must be a finite number > 0"),
    ("data.max_examples=0", "data.max_examples=0 must be a positive integer"),
    ("trainer.precision=fp16", "trainer.precision=fp16 needs a CUDA GPU"),
    ("peft.r=0", "peft.r=0 must be a positive integer"),
    ("model.attn_implementation=flash_attention_2", "flash_attention_2 needs the flash-attn package"),
    ("seed=-1", "seed=-1 must be an integer in [0, 2**32)"),
    ("logger=wandb", "logger=wandb"),
])
def test_08_15_values_that_cannot_train_are_refused_before_any_weight_loads(compose_config, override, says,
                                                                            monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("NETRC", "/nonexistent")
    monkeypatch.setenv("HOME", "/nonexistent")
    with pytest.raises(ConfigError) as raised:
        run_config(compose_config("recipe=smoke", override))
    assert says in str(raised.value) and "\n" not in str(raised.value)


def test_15_no_data_path_is_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "higgs_train.commands.train", f"hydra.run.dir={tmp_path}"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("higgs-train: error: data.path is not set")


# ---- 6: one run per directory --------------------------------------------------------------------------------------
def test_06_a_second_run_on_a_busy_run_dir_is_refused_and_a_dead_run_frees_it(tmp_path):
    with hold_run_dir(tmp_path):
        result = subprocess.run([sys.executable, "-m", "higgs_train.commands.train", "recipe=smoke",
                                 f"hydra.run.dir={tmp_path}"],
                                capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{tmp_path} is in use by another higgs-train run (pid {os.getpid()}" in result.stderr
    assert not (tmp_path / ".hydra").exists() and not (tmp_path / "metrics.jsonl").exists()
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from higgs_train.runtime.run_lock import "
                               "hold_run_dir\nwith hold_run_dir(sys.argv[1]): print('held', flush=True); "
                               "time.sleep(60)", str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with hold_run_dir(tmp_path):  # the dead holder's lock is gone with it
        pass


# ---- 9, 11, 12: integrity ------------------------------------------------------------------------------------------
def _fake_checkpoint(run_dir, step):
    from higgs_train.train.checkpoint import _write_manifest

    folder = run_dir / "checkpoints" / f"step_{step:08d}"
    folder.mkdir(parents=True)
    (folder / "trainable.safetensors").write_bytes(os.urandom(4096))
    (folder / "trainer_state.json").write_text(json.dumps({"state": {"step": step}}))
    _write_manifest(folder)
    return folder


@pytest.mark.parametrize("harm", ["flip", "truncate", "state"])
def test_09_11_a_damaged_newest_checkpoint_falls_back_to_the_newest_intact_one(tmp_path, harm, caplog):
    older, newest = _fake_checkpoint(tmp_path, 4), _fake_checkpoint(tmp_path, 8)
    target = newest / ("trainer_state.json" if harm == "state" else "trainable.safetensors")
    data = bytearray(target.read_bytes())
    if harm == "flip":
        data[100] ^= 1  # in range, same size: only the hash can tell
    else:
        data = data[: len(data) // 2]
    target.write_bytes(bytes(data))
    assert damage(older) is None and damage(newest) is not None
    assert newest_intact_checkpoint(tmp_path) == older
    assert f"checkpoint {newest} is damaged" in caplog.text
    (older / "trainable.safetensors").write_bytes(b"")
    with pytest.raises(TrainingError, match="every checkpoint in .* is damaged"):
        newest_intact_checkpoint(tmp_path)


def test_12_a_damaged_or_out_of_range_code_shard_is_named_and_its_clips_encoded_again(tmp_path, caplog):
    cache = CodeCache(tmp_path, "fingerprint", codebook_size=1024)
    good = cache.write_shard({"a.wav": torch.zeros(8, 5, dtype=torch.long)})
    flipped = cache.write_shard({"b.wav": torch.ones(8, 5, dtype=torch.long)})
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 0x10
    flipped.write_bytes(bytes(data))
    truncated = cache.write_shard({"c.wav": torch.ones(8, 5, dtype=torch.long)})
    truncated.write_bytes(truncated.read_bytes()[:40])
    out_of_range = cache.write_shard({"d.wav": torch.full((8, 5), 5000, dtype=torch.long)})
    legacy = cache.folder / "shard-00099.arrow"  # before shard names carried a hash: range checked only
    old_schema = pa.schema([("key", pa.string()), ("num_codebooks", pa.int32()), ("codes", pa.list_(pa.int16()))])
    with pa.OSFile(str(legacy), "wb") as sink, pa.ipc.new_file(sink, old_schema) as writer:
        writer.write_table(pa.table({"key": ["e.wav"], "num_codebooks": [1], "codes": [[-3]]}, schema=old_schema))
    assert list(cache.load()) == ["a.wav"]
    for shard in (flipped, truncated, out_of_range, legacy):
        assert f"code cache shard {shard} is damaged" in caplog.text and not shard.exists()
    assert good.exists()


# ---- 14: a full or read-only disk ----------------------------------------------------------------------------------
@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS], ids=["full", "read-only"])
def test_14_a_full_or_read_only_disk_under_convert_and_encode_is_one_line(code, jsonl_source, tmp_path, monkeypatch,
                                                                          capsys, tiny_checkpoint):
    source, _ = jsonl_source

    def refused(src, dst, *args, **kwargs):
        raise OSError(code, os.strerror(code), str(dst))

    monkeypatch.setattr(os, "replace", refused)
    for argv in (["convert", "jsonl", "--data", str(source / "train.jsonl"), "--out", str(tmp_path / "out")],
                 ["encode", "--data", str(source / "train.jsonl"), "--model", str(tiny_checkpoint)]):
        with pytest.raises(SystemExit) as exited:
            prep_main(argv)
        err = capsys.readouterr().err
        ours = [line for line in err.splitlines() if line.startswith("higgs-prep:")]  # the rest: progress bars
        assert exited.value.code == 1 and len(ours) == 1 and "Traceback" not in err, err
        assert ours[0].startswith("higgs-prep: error: cannot write ") and f"{os.strerror(code)}; free" in ours[0]
    assert not list(tmp_path.glob(".out.partial*")) and not (tmp_path / "out").exists()

