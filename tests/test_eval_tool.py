"""`higgs-eval`: test lists read with one clear line per mistake, any model evaluated on a fixed list, and an A/B
that tells a model that runs on from one that stops, with intervals, on real trained models of the tiny kit."""

import csv
import json
import os
import shutil
import sys

import pytest
from browser import open_in_chromium
from learns_to_stop_setups import COMMON, LORA
from omegaconf import OmegaConf
from safetensors.torch import load_file
from transformers import AutoConfig

from higgs_train.builtins.assets import resolve
from higgs_train.commands.eval import (
    EVAL_KEYS,
    _defaults,
    check_lengths,
    evaluate_model,
    utterance_columns,
    variants,
)
from higgs_train.commands.eval import main as eval_main
from higgs_train.commands.eval import run as run_eval
from higgs_train.commands.export import export
from higgs_train.data.conversations import DataError
from higgs_train.evaluate.eval_lists import load_test_list
from higgs_train.evaluate.judges import Judges
from higgs_train.model.loading import load_processor
from higgs_train.model.trainable import build_trainable_model
from higgs_train.runtime.key_value_args import ArgumentError
from higgs_train.train.checkpoint import complete_checkpoints
from higgs_train.train.recipe import train


def _list(tmp_path, text: str, name="meta.lst"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_seed_tts_list_reads_as_voice_clone_prompts_with_their_ground_truth(demo_dir, tmp_path):
    utterances = load_test_list(demo_dir / "eval.lst")
    assert len(utterances) == 28 and len({u["id"] for u in utterances}) == 28
    first = utterances[0]
    roles = [m["role"] for m in first["messages"]]
    assert roles == ["system", "user", "assistant", "user"]  # reference transcript + clip, then the new text
    assert first["target_path"].endswith(f"{first['id']}.wav")
    relative = _list(tmp_path, "u1|Good morning.|clips/alice_01.wav|New words.\n")
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "alice_01.wav").write_bytes((demo_dir / "clips" / "alice_01.wav").read_bytes())
    assert load_test_list(relative)[0]["messages"][2]["content"][0]["path"] == str(tmp_path / "clips" /
                                                                                   "alice_01.wav")


@pytest.mark.parametrize(("text", "says"), [
    ("u1|Hi.|a.wav\n", r"meta.lst:1: expected utt\|prompt_text\|prompt_wav\|target_text\[\|target_wav\] \(4 or 5 "
                       r"non-empty fields separated by \|\), found 3 field\(s\)"),
    ("\nu1|Hi.|nowhere.wav|Hello.\n", "meta.lst:2: reference_audio nowhere.wav does not exist"),
    ("u1|Hi.|{clip}|Hello.|gone.wav\n", "meta.lst:1: target_wav gone.wav does not exist"),
    ("u1|Hi.|{clip}|Hello.\nu1|Hi.|{clip}|Again.\n", "utterance id 'u1' appears twice"),
])
def test_malformed_lines_and_missing_clips_are_one_line_each(text, says, demo_dir, tmp_path):
    path = _list(tmp_path, text.format(clip=demo_dir / "clips" / "alice_01.wav"))
    with pytest.raises(DataError, match=says) as raised:
        load_test_list(path)
    assert len(str(raised.value).splitlines()) == 1


def test_a_jsonl_list_takes_prompts_and_conversation_rows(demo_dir, tmp_path):
    rows = (demo_dir / "train.jsonl").read_text().splitlines()[:1]
    path = _list(tmp_path, json.dumps({"id": "p", "text": "Hello.", "target_audio": str(demo_dir / "clips" /
                                                                                        "alice_01.wav")})
                 + "\n" + rows[0].replace('"clips/', f'"{demo_dir}/clips/') + "\n", "rows.jsonl")
    prompt, row = load_test_list(path)
    assert prompt["messages"][-1]["role"] == "user" and prompt["target_path"].endswith("alice_01.wav")
    assert row["messages"][-1]["role"] == "user" and row["target_path"].endswith(".wav")


def test_prompts_longer_than_the_model_allows_are_named(demo_dir, processor, model_config):
    from higgs_train.data.audio_codes import attach_codes
    from higgs_train.data.collator import ConversationCollator

    utterances = load_test_list(demo_dir / "eval.lst")[:3]
    attach_codes(utterances, processor.audio_tokenizer)
    collator = ConversationCollator(processor.tokenizer, model_config)
    check_lengths(utterances, collator, model_config, 100)
    small = AutoConfig.from_pretrained(model_config.name_or_path, max_position_embeddings=200)
    with pytest.raises(ArgumentError, match=rf"utterance {utterances[0]['id']} \(and 2 more\): its prompt has \d+ "
                                            r"positions, and with max_new_tokens=100 it needs more than the model's "
                                            "200"):
        check_lengths(utterances, collator, small, 100)


def test_variants_are_the_base_then_each_adapter_with_names_that_say_which():
    found = variants("builtin:tiny", ["runs/anna/export/adapter", "runs/bo/adapter"])
    assert [(v["model"], v["adapter"], v["name"]) for v in found] == [
        ("builtin:tiny", None, "A_tiny"), ("builtin:tiny", "runs/anna/export/adapter", "B_anna"),
        ("builtin:tiny", "runs/bo/adapter", "C_bo")]
    assert [v["name"] for v in variants(["a/merged", "b/export/merged"], None)] == ["A_a", "B_b"]


@pytest.mark.parametrize(("arguments", "says"), [
    (["list=builtin:demo-eval"], "model must be given"),
    (["model=builtin:tiny", "list=builtin:demo-eval", "language=fr"],
     "language='fr' is not allowed; use one of ['en', 'zh']"),
    (["model=builtin:tiny", "list=builtin:demo-eval", "lmit=3"], "'lmit=3' is not KEY=VALUE with a known KEY"),
])
def test_mistakes_are_one_line(arguments, says, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["higgs-eval", *arguments])
    with pytest.raises(SystemExit) as exited:
        eval_main()
    said = capsys.readouterr().err
    assert exited.value.code == 2 and said.startswith("higgs-eval: error: ") and says in said
    assert len(said.strip().splitlines()) == 1


@pytest.mark.slow
def test_a_model_that_runs_on_loses_the_ab_and_identical_models_do_not_differ(tmp_path, demo_task, compose_config,
                                                                              monkeypatch):
    """Two models trained alike on 4 clips (the learns-to-stop setup), the second without its stream-end labels,
    each asked for 3 sampled takes of the 4 training prompts: 12 utterances."""
    from higgs_train.data import collator as collator_module

    run = [*COMMON, *LORA, "seed=1", "eval.num_samples=0", "eval.every_n_steps=null"]
    train(compose_config(*run), tmp_path / "normal")
    real = collator_module.delayed_audio_labels
    monkeypatch.setattr(collator_module, "delayed_audio_labels", lambda codes, eos, stops=True: real(codes, eos, False))
    train(compose_config(*run), tmp_path / "runaway")
    monkeypatch.undo()
    rows = tmp_path / "takes.jsonl"
    conversations = demo_task("smart_voice")[:4]  # the 4 rows trained on, laid out as training laid them out
    for conversation in conversations:
        for item in (i for m in conversation["messages"] for i in m["content"] if i["type"] == "audio"):
            item.pop("codes")  # the list names the clips; higgs-eval encodes them
    rows.write_text("".join(json.dumps({**c, "id": f"{c['id']}-take{take}"}) + "\n" for take in range(3)
                            for c in conversations))
    merged = [str(export(tmp_path / name, merge=True)) for name in ("normal", "runaway")]
    summary = run_eval({**_defaults(), "model": [merged[0], merged[1], merged[0]], "list": str(rows),
                        "out": str(tmp_path / "eval"), "max_new_tokens": 120, "do_sample": True})
    runaway, same = summary["comparisons"]
    assert [v["name"] for v in summary["variants"]] == ["A_normal", "B_runaway", "C_normal"]
    assert summary["variants"][0]["summary"]["stop_rate"] == 1.0 and summary["variants"][1]["summary"]["stop_rate"] \
        == 0.0
    stop = runaway["metrics"]["stop_rate"]
    assert stop["n"] == 12 and stop["high"] < 0 and stop["verdict"] == "worse", stop
    assert {row["verdict"] for row in same["metrics"].values()} == {"no measurable difference"}
    assert summary["not_measured"] == {"wer": "not measured (set asr_model)",  # higgs-eval's own key
                                       "speaker_similarity": "not measured (set speaker_model)"}
    written = tmp_path / "eval"
    assert (written / "utterances.csv").read_text().count("\n") == 1 + 3 * 12
    assert json.loads((written / "summary.json").read_text())["comparisons"][0]["metrics"]["stop_rate"] == stop
    assert len(list((written / "B_runaway").glob("*.wav"))) == 12
    page = (written / "report.html").read_text()
    assert page.count("<audio ") == 4 * 12 and "not measured (set asr_model)" in page and "worse" in page
    assert len(list((written / "prompts").iterdir())) == 12  # each utterance's target clip, beside the page
    assert f"<tr><th>B_runaway</th><td class='text'>{merged[1]}</td>" in page  # which checkpoint a variant is
    assert "<th>max_new_tokens</th><td class='text'>120</td>" in page and "{'" not in page  # settings, no dict
    if shutil.which("chromium") or os.environ.get("CI") == "true":  # the page in a real browser: every clip plays
        checked, console = open_in_chromium(written / "report.html")
        assert checked == {"audio": 48, "missing": 0, "broken_images": 0}, console


def _utterance_rows(folder, variant: str) -> list[dict]:
    with open(folder / "utterances.csv", newline="") as handle:
        return [row for row in csv.DictReader(handle) if row["variant"] == variant]


@pytest.mark.slow
def test_an_exported_adapter_and_the_adapter_as_training_held_it_give_identical_metrics(tmp_path, demo_dir,
                                                                                      tiny_checkpoint,
                                                                                      compose_config):
    cfg = compose_config("recipe=smoke", "trainer.max_steps=6", "trainer.save_every_n_steps=6", "eval.num_samples=0",
                         "optim.lr=1e-2")
    run_dir = tmp_path / "run"
    train(cfg, run_dir)
    args = {**_defaults(), "model": "builtin:tiny", "adapter": str(export(run_dir)), "list": "builtin:demo-eval",
            "out": str(tmp_path / "eval"), "max_new_tokens": 40, "limit": 6}
    summary = run_eval(args)
    exported = _utterance_rows(tmp_path / "eval", summary["variants"][1]["name"])
    as_trained = build_trainable_model(cfg, str(tiny_checkpoint), "sdpa")  # the base + adapters of training
    as_trained.load_state_dict(load_file(complete_checkpoints(run_dir)[-1] / "trainable.safetensors"), strict=False)
    records = evaluate_model(as_trained.eval(), load_processor(str(tiny_checkpoint)),
                             load_test_list(resolve("builtin:demo-eval"))[:6],
                             OmegaConf.create({key: args[key] for key in EVAL_KEYS}), tmp_path / "in_training",
                             Judges())
    assert len(exported) == len(records) == 6
    for row, record in zip(exported, records):
        assert {k: row[k] for k in utterance_columns()[1:-1]} == {k: str(record.get(k, "")) for k in
                                                                 utterance_columns()[1:-1]}
