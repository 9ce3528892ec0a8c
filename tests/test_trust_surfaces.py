"""The trust catalog, round 3: the surfaces added since training data got its discipline (pairs, evaluation lists,
judges, objective settings, exports, generate), each held to it. A refused input is one line naming the file, line
or key and the fix, with rc != 0, before any weight loads; nothing is deleted or overwritten that the tool did not
write; bad rows are counted and listed, never scored or trained on silently. Each test aims at a class of failure,
with the cases of issue 34 among its members."""

import json
import re
import shutil
import sys

import numpy as np
import pytest
import soundfile as sf

from data_prep.cli import main as prep_main
from higgs_train.commands.eval import main as eval_main
from higgs_train.commands.export import export
from higgs_train.commands.generate import main as generate_main
from higgs_train.config import ConfigError, run_config
from higgs_train.data.collator import ConversationCollator
from higgs_train.data.conversations import DataError
from higgs_train.data.pair_table import PairTable, fitting_pairs, pairs_from_jsonl
from higgs_train.evaluate.eval_lists import load_test_list
from higgs_train.evaluate.judges import AsrJudge
from higgs_train.evaluate.prompts import load_prompts
from higgs_train.evaluate.sample_files import OutputError, sample_file_name
from higgs_train.model.loading import warn_if_other_base
from higgs_train.runtime import ownership
from higgs_train.runtime.run_lock import hold_output
from higgs_train.train.resumable import ResumeError, check_resumable, resume_record, run_signature


def _tree(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _tool(main, argv, monkeypatch, capsys) -> tuple[int, str]:
    """(exit status, stderr) of a tool's `main` as its console script runs it."""
    monkeypatch.setattr(sys, "argv", ["tool", *argv])
    code = 0
    try:
        main()
    except SystemExit as exited:
        code = exited.code
    return code, capsys.readouterr().err


def _refused(main, argv, monkeypatch, capsys, says: str) -> str:
    """Asserts one refusal line, rc 2, no traceback; returns the line."""
    code, err = _tool(main, argv, monkeypatch, capsys)
    lines = err.strip().splitlines()
    assert code == 2 and "Traceback" not in err and lines, err
    assert ": error: " in lines[-1] and says in lines[-1], lines[-1]
    assert sum(": error: " in line for line in lines) == 1, err
    return lines[-1]


def _clip(path, samples, rate=24000, subtype="PCM_16"):
    path.parent.mkdir(parents=True, exist_ok=True)
    with np.errstate(invalid="ignore"):
        sf.write(path, samples, rate, subtype=subtype)
    return path


def _voice(seconds=1.0):
    return (0.2 * np.random.RandomState(0).randn(int(24000 * seconds))).astype(np.float32)


def _bad_clips(folder):
    """One clip of each kind a prompt must not be: name -> (path, the reason it is refused)."""
    truncated = _clip(folder / "truncated.wav", _voice())
    truncated.write_bytes(truncated.read_bytes()[:20000])
    (folder / "notes.wav").write_text("a text file, not audio\n")
    (folder / "empty.wav").write_bytes(b"")
    return {"silent": (_clip(folder / "silent.wav", np.zeros(24000, np.float32)), "silent audio"),
            "nan": (_clip(folder / "nan.wav", np.full(24000, np.nan, np.float32), subtype="FLOAT"),
                    "non-finite samples"),
            "short": (_clip(folder / "short.wav", _voice(0.05)), "duration out of range"),
            "text": (folder / "notes.wav", "undecodable audio"),
            "empty": (folder / "empty.wav", "undecodable audio"),
            "truncated": (truncated, "truncated audio")}


# ---- data loss: nothing deleted or overwritten that the tool did not write -----------------------------------------
def test_a_second_eval_into_its_own_out_replaces_only_what_it_wrote(tmp_path, demo_dir, tiny_checkpoint, monkeypatch,
                                                                     capsys):
    (tmp_path / "meta.lst").write_text(f"u1|Hello.|{demo_dir}/clips/alice_01.wav|Good morning.\n")
    out = tmp_path / "eval"
    argv = [f"model={tiny_checkpoint}", f"list={tmp_path / 'meta.lst'}", f"out={out}", "max_new_tokens=5"]
    assert _tool(eval_main, argv, monkeypatch, capsys)[0] == 0
    assert _tool(eval_main, argv, monkeypatch, capsys)[0] == 0  # its own earlier output: replaced
    (out / "notes.txt").write_text("the user's")
    (out / "summary.json").write_text("{\"edited\": true}")
    before = _tree(out)
    line = _refused(eval_main, argv, monkeypatch, capsys, "did not write there, or edited since")
    assert "notes.txt" in line and "summary.json" in line and "out=" in line
    assert _tree(out) == before
    with hold_output(out, "out="):  # another evaluation writing it now
        _refused(eval_main, argv, monkeypatch, capsys, "is being written by another higgs-train command")
    assert _tree(out) == before


@pytest.mark.parametrize("kind, setting", [("export", "out="), ("pairs", "--out")])
def test_an_earlier_output_with_a_file_added_later_is_never_replaced(kind, setting, tmp_path):
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    (out / "adapter_config.json").write_text("{}")
    (out / "sub" / "weights.bin").write_bytes(b"ours")
    ownership.mark(out, kind, record_files=True)
    ownership.check_replaceable(out, kind, setting)  # as written: ours to replace
    (out / "sub" / "precious.wav").write_bytes(b"the user's")
    with pytest.raises(ownership.NotOursError, match=r"did not write there, or edited since \(sub/precious.wav\)"):
        ownership.check_replaceable(out, kind, setting)
    if kind == "export":
        before = _tree(out)
        with pytest.raises(ownership.NotOursError):
            export(tmp_path / "no_run", out=out)  # refused before anything loads
        assert _tree(out) == before
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    ownership.mark(legacy, kind)  # an earlier version's marker lists no files: what was added cannot be told
    with pytest.raises(ownership.NotOursError, match="kept no list of its files"):
        ownership.check_replaceable(legacy, kind, setting)


def test_files_our_tools_add_to_a_pairs_folder_later_are_still_ours(tmp_path):
    ownership.mark(tmp_path, "pairs", record_files=True)
    (tmp_path / "reference-0123.npy").write_bytes(b"log-probabilities")
    ownership.check_replaceable(tmp_path, "pairs", "--out", also_ours=("reference-*.npy",))


def test_generate_never_overwrites_an_input_or_a_file_it_did_not_write(tmp_path, demo_dir, tiny_checkpoint,
                                                                       monkeypatch, capsys):
    reference = tmp_path / "ref.wav"
    shutil.copy(demo_dir / "clips" / "alice_01.wav", reference)
    users = _clip(tmp_path / "mine.wav", _voice())
    (tmp_path / "folder.wav").mkdir()
    before = _tree(tmp_path)
    clone = [f"model={tiny_checkpoint}", "text=New words.", f"reference_audio={reference}", "reference_text=Hello.",
             "max_new_tokens=5"]
    clone += [f"out={tmp_path}"]
    _refused(generate_main, [*clone, "id=ref"], monkeypatch, capsys, "which this command reads as its input")
    _refused(generate_main, [*clone, "id=mine"], monkeypatch, capsys, "exists and higgs-train did not write it")
    _refused(generate_main, [*clone, "id=folder"], monkeypatch, capsys, "is a folder")
    _refused(generate_main, [*clone, f"out={tmp_path / 'x.wav'}"], monkeypatch, capsys,
             f"out={tmp_path / 'x.wav'} is the folder the wavs go to; give out={tmp_path} id=x")
    _refused(generate_main, [*clone, "id=a:b"], monkeypatch, capsys, "id=a:b names the wav")
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"id": "mine", "text": "One."}\n')
    _refused(generate_main, [f"model={tiny_checkpoint}", f"list={prompts}", f"out={tmp_path}",
                             "max_new_tokens=5"], monkeypatch, capsys, f"{users} exists and higgs-train did not")
    assert {k: v for k, v in _tree(tmp_path).items() if k != "prompts.jsonl"} == before
    fresh = [*clone, "id=new"]
    assert _tool(generate_main, fresh, monkeypatch, capsys)[0] == 0
    assert _tool(generate_main, fresh, monkeypatch, capsys)[0] == 0  # its own earlier wav: overwritten


# ---- silent wrong answers: every line used as it says, or refused ---------------------------------------------------
def test_ids_that_would_write_one_wav_are_refused(tmp_path, demo_dir):
    clip = demo_dir / "clips" / "alice_01.wav"
    for first, second in (("a/b", "a_b"), ("a:b", "a?b"), ("Utt", "utt"), (".x", "_x")):
        (tmp_path / "meta.lst").write_text(f"{first}|Hi.|{clip}|Hello.\n{second}|Hi.|{clip}|Again.\n")
        with pytest.raises(OutputError, match=re.escape(f"utterance ids {first!r} and {second!r} would write one ")):
            load_test_list(tmp_path / "meta.lst")
        (tmp_path / "prompts.jsonl").write_text(json.dumps({"id": first, "text": "a"}) + "\n" +
                                                json.dumps({"id": second, "text": "b"}) + "\n")
        with pytest.raises(OutputError, match="would write one file"):
            load_prompts(tmp_path / "prompts.jsonl")
    for hostile in ("../../etc/passwd", "x" * 400, "", ".hidden", "con\x00trol"):
        name = sample_file_name(hostile)
        assert "/" not in name and "\x00" not in name and not name.startswith(".") and len(name) < 200


def test_a_byte_order_mark_is_not_part_of_the_first_id(tmp_path, demo_dir):
    clip = demo_dir / "clips" / "alice_01.wav"
    (tmp_path / "meta.lst").write_bytes(f"\ufeffu1|Hi.|{clip}|Hello.\r\nu2|Hi.|{clip}|Again.\r\n".encode())
    assert [u["id"] for u in load_test_list(tmp_path / "meta.lst")] == ["u1", "u2"]
    (tmp_path / "rows.jsonl").write_bytes(("\ufeff" + json.dumps({"id": "p1", "text": "Hello."}) + "\n").encode())
    assert [u["id"] for u in load_test_list(tmp_path / "rows.jsonl")] == ["p1"]
    assert [c["id"] for c in load_prompts(tmp_path / "rows.jsonl")] == ["p1"]


def test_every_unusable_clip_of_a_list_is_counted_and_named(tmp_path, demo_dir, tiny_checkpoint, monkeypatch,
                                                           capsys):
    bad = _bad_clips(tmp_path / "clips")
    good = demo_dir / "clips" / "alice_01.wav"
    lines = [f"good|Hi.|{good}|Hello."] + [f"{name}|Hi.|{path}|Hello." for name, (path, _) in bad.items()]
    lines.append(f"target|Hi.|{good}|Hello.|{bad['silent'][0]}")  # a ground truth is a clip too
    (tmp_path / "meta.lst").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as raised:
        load_test_list(tmp_path / "meta.lst")
    said = str(raised.value)
    assert said.startswith(f"{tmp_path / 'meta.lst'}: 7 of 8 lines cannot be used: ") and "\n" not in said
    assert "and 4 more" in said and "every line is used, or none" in said
    for number, (name, (_, reason)) in list(enumerate(bad.items(), start=2))[:3]:
        assert f"meta.lst:{number}: reference_audio {bad[name][0]}: {reason}" in said
    for name, (path, reason) in bad.items():  # each kind alone, through the command: one line, before any weights
        (tmp_path / "one.lst").write_text(f"{name}|Hi.|{path}|Hello.\n")
        _refused(eval_main, [f"model={tiny_checkpoint}", f"list={tmp_path / 'one.lst'}", f"out={tmp_path / 'o'}"],
                 monkeypatch, capsys, f"one.lst:1: reference_audio {path}: {reason}")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("kind", ["silent", "nan", "short", "text", "truncated"])
def test_a_reference_clip_generate_cannot_use_is_one_line(kind, tmp_path, tiny_checkpoint, monkeypatch, capsys):
    path, reason = _bad_clips(tmp_path)[kind]
    _refused(generate_main, [f"model={tiny_checkpoint}", "text=Hello.", f"reference_audio={path}",
                             "reference_text=Hi.", f"out={tmp_path}", "id=out"], monkeypatch, capsys,
             f"command line: reference_audio {path}: {reason}")
    assert not (tmp_path / "out.wav").exists()


def _pairs_folder(tmp_path, demo_dir, lines):
    folder = tmp_path / "pairs"
    shutil.copytree(demo_dir / "clips", folder / "clips")
    (folder / "pairs.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return folder / "pairs.jsonl"


def _demo_pairs(demo_dir):
    return [json.loads(line) for line in (demo_dir / "pairs.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("harm, says", [
    ("duplicate", "id 'DUP' is also the id of"),
    ("truncated", "truncated audio"),
    ("huge", "longer than 1 MiB"),
])
def test_bad_pairs_are_counted_and_named_never_trained_on(harm, says, tmp_path, demo_dir, processor,
                                                          data_cfg_factory):
    lines = _demo_pairs(demo_dir)[:4]
    if harm == "duplicate":
        lines[1]["id"] = lines[2]["id"] = "DUP"
    path = _pairs_folder(tmp_path, demo_dir, lines)
    if harm == "truncated":
        clip = path.parent / lines[1]["rejected"]
        clip.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    if harm == "huge":  # one line of 2 MiB: refused at its first MiB, never read whole
        with open(path, "a") as handle:
            handle.write('{"id": "' + "x" * 2 * 1024 ** 2 + '"}\n')
    with pytest.raises(DataError, match=says) as raised:
        pairs_from_jsonl(path, processor.audio_tokenizer, data_cfg_factory(path))
    assert "\n" not in str(raised.value) and str(path) in str(raised.value)
    if harm != "huge":  # data.on_bad_row=skip: the good pairs are kept, the bad one counted and listed
        table = PairTable(pairs_from_jsonl(path, processor.audio_tokenizer, data_cfg_factory(path, on_bad_row="skip")))
        assert len(table) == 3 and len(table.info["left_out"]) == 1 and says in table.info["left_out"][0]


def test_pairs_longer_than_max_positions_are_never_trained_on_silently(demo_dir, processor, model_config,
                                                                       data_cfg_factory):
    from higgs_train.builtins.assets import resolve
    from higgs_train.data.pair_table import open_pairs

    path = resolve("builtin:demo-pairs")
    table = open_pairs(path, processor.audio_tokenizer, data_cfg_factory(path))
    collator = ConversationCollator(processor.tokenizer, model_config)
    rows, skipped = fitting_pairs(table, collator, data_cfg_factory(path))
    assert len(rows) == len(table) and skipped == {}
    lengths = [max(collator.count_positions(table.pair(i)[s]["messages"]) for s in ("chosen", "rejected"))
               for i in range(len(table))]
    limit = sorted(lengths)[len(lengths) // 2]
    with pytest.raises(DataError, match=rf"positions exceed data.max_positions={limit}; raise data.max_positions"):
        fitting_pairs(table, collator, data_cfg_factory(path, max_positions=limit))
    rows, skipped = fitting_pairs(table, collator, data_cfg_factory(path, max_positions=limit, on_bad_row="skip"))
    assert list(rows) == [i for i, n in enumerate(lengths) if n <= limit]
    assert skipped == {f"longer than data.max_positions={limit}": sum(n > limit for n in lengths)}


def test_a_damaged_pairs_folder_is_one_line(tmp_path, demo_dir, processor, data_cfg_factory):
    from higgs_train.builtins.assets import resolve
    from higgs_train.data.pair_table import open_pairs

    path = resolve("builtin:demo-pairs")
    source = open_pairs(path, processor.audio_tokenizer, data_cfg_factory(path)).folder
    shutil.copytree(source, tmp_path / "pairs")
    (tmp_path / "pairs" / "pairs.arrow").write_bytes(b"not arrow")
    with pytest.raises(DataError, match=rf"data.pairs={tmp_path / 'pairs'} cannot be read .*higgs-prep pairs --out"):
        open_pairs(tmp_path / "pairs", processor.audio_tokenizer, data_cfg_factory(path))


def test_training_samples_whose_ids_share_a_file_name_each_keep_their_wav(tmp_path, demo_task, processor,
                                                                          model_config, eval_cfg_factory,
                                                                          monkeypatch):
    import torch

    from higgs_train.evaluate import samples as samples_module

    conversations = [dict(c, id=name) for c, name in zip(demo_task("smart_voice")[:3], ("a/b", "a_b", "A_B"))]
    monkeypatch.setattr(samples_module, "generate_codes", lambda model, collator, chunk, settings: [
        (torch.randint(0, 1024, (8, 5)), True) for _ in chunk])
    records, _ = samples_module.write_samples(torch.nn.Linear(1, 1), processor.audio_tokenizer,
                                              ConversationCollator(processor.tokenizer, model_config), conversations,
                                              eval_cfg_factory(), tmp_path)
    assert len({r["path"] for r in records}) == 3 and len(list(tmp_path.glob("*.wav"))) == 3


def test_a_dpo_resume_sees_a_replaced_clip_and_names_data_pairs(tmp_path, demo_dir, compose_config):
    path = _pairs_folder(tmp_path, demo_dir, _demo_pairs(demo_dir)[:2])
    cfg = compose_config("recipe=dpo_smoke", f"data.pairs={path}")
    saved = {"signature": run_signature(cfg, 1), **resume_record(cfg)}
    check_resumable(saved, cfg, 1, tmp_path)
    clip = path.parent / _demo_pairs(demo_dir)[0]["chosen"]
    clip.write_bytes(clip.read_bytes() + b"\0\0")  # the same path, other audio
    with pytest.raises(ResumeError, match=rf"the data at data.pairs={path} changed .*the audio files it names"):
        check_resumable(saved, cfg, 1, tmp_path)


def test_an_adapter_put_on_another_base_is_said(tmp_path, tiny_checkpoint, caplog):
    caplog.set_level("INFO", logger="higgs_train")
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(tiny_checkpoint)}))
    warn_if_other_base(str(tiny_checkpoint), str(adapter))
    assert "was trained on" not in caplog.text
    warn_if_other_base("someone/another-base", str(adapter))
    assert f"adapter {adapter} was trained on {tiny_checkpoint}, and model=someone/another-base is another" in \
        caplog.text


@pytest.mark.parametrize("overrides, says", [
    (["objective.rewards.wer=1.0"], "objective.rewards.wer=1.0 needs a judge to measure it, and eval.asr_model is"),
    (["objective.rewards.speaker_similarity=0.5"], "eval.speaker_model is not set"),
    (["objective.rewards.stopped=-1"], "objective.rewards.stopped=-1 must be a finite number >= 0"),
    (["objective.rewards.loop_share=abc"], "objective.rewards.loop_share='abc' must be a finite number"),
    (["objective.rewards.stopped=0", "objective.rewards.duration_error=0", "objective.rewards.loop_share=0"],
     "every objective.rewards weight is 0"),
    (["objective.max_new_tokens=0"], "objective.max_new_tokens=0 must be a positive integer"),
    (["objective.samples_per_prompt=1"], "objective.samples_per_prompt=1 must be an integer >= 2"),
    (["objective.kl_beta=-0.1"], "objective.kl_beta=-0.1 must be a finite number >= 0"),
])
def test_grpo_settings_that_cannot_train_are_refused_before_any_weight_loads(overrides, says, compose_config):
    with pytest.raises(ConfigError) as raised:
        run_config(compose_config("recipe=grpo_smoke", *overrides))
    assert says in str(raised.value) and "\n" not in str(raised.value)


@pytest.mark.parametrize("override, says", [
    ("objective.length_normalized=maybe", "objective.length_normalized='maybe' must be a bool"),
    ("objective.beta=0", "objective.beta=0 must be a finite number > 0"),
    ("objective.sft_weight=-1", "objective.sft_weight=-1 must be a finite number >= 0"),
])
def test_dpo_settings_that_cannot_train_are_refused_before_any_weight_loads(override, says, compose_config):
    with pytest.raises(ConfigError) as raised:
        run_config(compose_config("recipe=dpo_smoke", override))
    assert says in str(raised.value)


@pytest.mark.parametrize("override, says", [
    ("eval.num_samples=-1", "eval.num_samples=-1 must be an integer >= 0"),
    ("eval.temperature=0", "eval.temperature=0 must be a finite number > 0"),
    ("eval.chars_per_second=-3", "eval.chars_per_second=-3 must be a finite number > 0"),
    ("eval.duration_cap=-1", "eval.duration_cap=-1 must be a finite number > 0"),
    ("eval.max_new_tokens=0", "eval.max_new_tokens=0 must be a positive integer"),
])
def test_training_evaluation_settings_out_of_range_are_refused_before_any_weight_loads(override, says,
                                                                                      compose_config):
    with pytest.raises(ConfigError) as raised:
        run_config(compose_config("recipe=smoke", override))
    assert says in str(raised.value)


# ---- tracebacks where one line belongs ------------------------------------------------------------------------------
def test_a_list_that_is_not_utf8_names_its_line(tmp_path, tiny_checkpoint, monkeypatch, capsys):
    (tmp_path / "meta.lst").write_bytes(b"u1|Hi.|a.wav|Hello.\nu2|Caf\xe9.|a.wav|Hello.\n")
    _refused(eval_main, [f"model={tiny_checkpoint}", f"list={tmp_path / 'meta.lst'}", f"out={tmp_path / 'o'}"],
             monkeypatch, capsys, "meta.lst:2: not UTF-8 text (byte 0xe9 at column 7); re-save the file as UTF-8")


GENERATION_MISTAKES = [  # worded by GenerationConfig's fields, as the training run's eval.* keys are
    ("batch_size=0", "batch_size=0 must be a positive integer"),
    ("max_new_tokens=0", "max_new_tokens=0 must be a positive integer"),
    ("max_new_tokens=-5", "max_new_tokens=-5 must be a positive integer"),
    ("temperature=nan", "temperature=nan must be a finite number > 0"),
    ("temperature=0", "temperature=0 must be a finite number > 0"),
    ("chars_per_second=0", "chars_per_second=0 must be a finite number > 0"),
    ("seed=-1", "seed=-1 must be an integer >= 0"),
    ("silence_db=10", "silence_db=10 must be at most 0"),
    ("duration_cap=-1", "duration_cap=-1 must be a finite number > 0"),
    ("duration_cap=nan", "duration_cap=nan must be a finite number > 0"),
    ("ras_win_len=0", "ras_win_len=0 must be a positive integer or null"),
    ("device=gpu", "device='gpu' is not a device"),
]


@pytest.mark.parametrize("argument, says", [*GENERATION_MISTAKES, ("limit=-1", "limit=-1 must be an integer >= 0")])
def test_eval_settings_out_of_range_are_one_line(argument, says, monkeypatch, capsys):
    _refused(eval_main, ["model=builtin:tiny", "list=builtin:demo-eval", argument], monkeypatch, capsys, says)


@pytest.mark.parametrize("argument, says", GENERATION_MISTAKES)
def test_generate_settings_out_of_range_are_one_line(argument, says, tmp_path, monkeypatch, capsys):
    _refused(generate_main, ["model=builtin:tiny", "text=Hello.", f"out={tmp_path}", "id=o", argument],
             monkeypatch, capsys, says)


def test_a_judge_of_another_kind_is_one_line_before_any_generation(tmp_path, tiny_checkpoint, monkeypatch, capsys,
                                                                    caplog):
    caplog.set_level("INFO", logger="higgs_train")
    _refused(eval_main, [f"model={tiny_checkpoint}", "list=builtin:demo-eval", f"out={tmp_path / 'o'}",
                         f"asr_model={tiny_checkpoint}"], monkeypatch, capsys,
             f"asr_model={tiny_checkpoint} cannot be used")
    assert not (tmp_path / "o").exists()
    assert f"eval.asr_model={tiny_checkpoint} cannot be loaded" in caplog.text
    assert AsrJudge.load(str(tiny_checkpoint)) is None  # it loads as a pipeline, and fails on its first clip


@pytest.mark.parametrize("options, says", [
    (["--samples-per-prompt", "1", "--with-greedy"],
     "--samples-per-prompt 1: a pair needs two answers (--with-greedy's greedy"),
    (["--samples-per-prompt", "0"], "--samples-per-prompt 0: a pair needs two answers"),
    (["--samples-per-prompt", "1"], "--samples-per-prompt 1: a pair needs two answers"),
    (["--temperature", "0"], "--temperature 0.0: must be above 0"),
    (["--max-new-tokens", "0"], "--max-new-tokens 0: must be above 0"),
    (["--limit", "-2"], "--limit -2: must be 0 or more"),
    (["--duration-band", "1.25", "0.8"], "--duration-band 1.25 0.8"),
    (["--max-loop-share", "2"], "--max-loop-share 2.0: a share"),
])
def test_pairs_options_that_cannot_make_pairs_are_one_line(options, says, tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        prep_main(["pairs", "--model", "builtin:tiny", "--data", "builtin:demo", "--out", str(tmp_path / "p"),
                   *options])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("higgs-prep: error: ") and says in err, err

