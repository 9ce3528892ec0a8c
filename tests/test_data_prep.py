"""`higgs-prep convert`: every source format from fixtures written here, and every kind of bad input reported."""

import json
import shutil
import subprocess

import datasets
import numpy as np
import pytest
import soundfile as sf

from data_prep.cli import main as prep_main
from data_prep.convert import ConvertError, convert
from higgs_train.data.conversations import load_rows
from higgs_train.runtime.errors import UserError


@pytest.fixture(scope="module")
def spoken(tmp_path_factory):
    """One real espeak-ng clip (22,050 Hz mono) and its text."""
    path = tmp_path_factory.mktemp("espeak") / "spoken.wav"
    text = "The quick brown fox jumps."
    subprocess.run([shutil.which("espeak-ng"), "-w", str(path), text], check=True)
    waveform, rate = sf.read(path, dtype="float32")
    return waveform, rate, text


def _target_clip(row: dict) -> tuple[np.ndarray, int]:
    waveform, rate = sf.read(row["messages"][-1]["content"][0]["path"], dtype="float32", always_2d=True)
    return waveform, rate


def _assert_clean_tts_rows(folder, expected_texts: dict[str, str]):
    rows = {row["id"]: row for row in load_rows(folder)}
    assert {i: r["messages"][2]["content"][0]["text"] for i, r in rows.items()} == expected_texts
    for row in rows.values():
        waveform, rate = _target_clip(row)
        assert rate == 24000 and waveform.shape[1] == 1 and len(waveform) > 0
        assert [m["role"] for m in row["messages"]] == ["system", "scene", "user", "assistant"]


def test_ljspeech(tmp_path, spoken):
    waveform, rate, text = spoken
    (tmp_path / "lj" / "wavs").mkdir(parents=True)
    for name in ("LJ001-0001", "LJ001-0002"):
        sf.write(tmp_path / "lj" / "wavs" / f"{name}.wav", waveform, rate)
    (tmp_path / "lj" / "metadata.csv").write_text(f"LJ001-0001|{text}|{text}\nLJ001-0002|Raw 2.|Normalized two.\n")
    report = convert("ljspeech", tmp_path / "lj", tmp_path / "out")
    assert report["kept"] == 2 and report["rejected"] == 0
    _assert_clean_tts_rows(tmp_path / "out", {"LJ001-0001": text, "LJ001-0002": "Normalized two."})


def test_audiofolder_with_jsonl_metadata(tmp_path, spoken):
    waveform, rate, text = spoken
    (tmp_path / "af" / "sub").mkdir(parents=True)
    sf.write(tmp_path / "af" / "sub" / "a.wav", waveform, rate)
    (tmp_path / "af" / "metadata.jsonl").write_text(json.dumps({"file_name": "sub/a.wav", "transcription": text,
                                                                "speaker_id": 7}) + "\n")
    convert("audiofolder", tmp_path / "af", tmp_path / "out")
    _assert_clean_tts_rows(tmp_path / "out", {"sub_a": text})
    assert load_rows(tmp_path / "out")[0]["speaker"] == "7"


def test_hf_dataset_saved_to_disk(tmp_path, spoken):
    waveform, rate, text = spoken
    sf.write(tmp_path / "x.wav", waveform, rate)
    data = datasets.Dataset.from_dict({"audio": [str(tmp_path / "x.wav")], "text": [text], "speaker": ["kim"]})
    data.cast_column("audio", datasets.Audio(decode=False)).save_to_disk(str(tmp_path / "hf"))
    convert("hf", tmp_path / "hf", tmp_path / "out")
    _assert_clean_tts_rows(tmp_path / "out", {"0": text})


def test_jsonl_ours_and_higgs_chatml(tmp_path, spoken):
    waveform, rate, text = spoken
    sf.write(tmp_path / "c.wav", waveform, rate)
    ours = {"id": "ours", "speaker": "s", "messages": [
        {"role": "system", "content": [{"type": "text", "text": "Generate audio following instruction."}]},
        {"role": "scene", "content": [{"type": "text", "text": "Audio is recorded from a quiet room."}]},
        {"role": "user", "content": [{"type": "text", "text": text}]},
        {"role": "assistant", "content": [{"type": "audio", "path": "c.wav"}]}]}
    chatml = {"id": "chatml", "speaker": "s", "messages": [
        {"role": "system", "content": "Generate audio following instruction.\n\n<|scene_desc_start|>\n"
                                      "Audio is recorded from a quiet room.\n<|scene_desc_end|>"},
        {"role": "user", "content": text},
        {"role": "assistant", "content": {"type": "audio", "audio_url": "c.wav"}}]}
    (tmp_path / "in.jsonl").write_text(json.dumps(ours) + "\n" + json.dumps(chatml) + "\n")
    convert("jsonl", tmp_path / "in.jsonl", tmp_path / "out")
    rows = load_rows(tmp_path / "out")
    assert rows[0]["messages"] == rows[1]["messages"]  # same conversation, one clip written once
    _assert_clean_tts_rows(tmp_path / "out", {"ours": text, "chatml": text})


BAD_ROWS = {  # file -> the reason it must be rejected with
    "nan.wav": "non-finite samples (NaN or inf)",
    "inf.wav": "non-finite samples (NaN or inf)",
    "empty.wav": "empty audio",
    "silent.wav": "silent audio",
    "short.wav": "duration out of range",
    "long.wav": "duration out of range",
    "zero_bytes.wav": "undecodable audio",
    "text.wav": "undecodable audio",
    "missing.wav": "missing audio file",
    "no_text.wav": "empty transcript",
    "stranger.wav": "unknown speaker",
}
GOOD_ROWS = ("good.wav", "stereo48k.wav", "low8k.wav")


@pytest.fixture
def hostile_folder(tmp_path, spoken):
    """An audiofolder holding every kind of bad input beside three good clips that need converting."""
    import librosa

    waveform, rate, text = spoken
    folder = tmp_path / "hostile"
    folder.mkdir()
    sf.write(folder / "good.wav", waveform, rate)
    loud = librosa.resample(waveform, orig_sr=rate, target_sr=48000)
    sf.write(folder / "stereo48k.wav", np.stack([loud, 0.5 * loud], axis=1), 48000)
    sf.write(folder / "low8k.wav", librosa.resample(waveform, orig_sr=rate, target_sr=8000), 8000)
    for name, value in (("nan.wav", np.nan), ("inf.wav", np.inf)):
        broken = waveform.copy()
        broken[100] = value
        sf.write(folder / name, broken, rate, subtype="FLOAT")
    sf.write(folder / "empty.wav", np.zeros(0, np.float32), rate)
    sf.write(folder / "silent.wav", np.zeros(rate, np.float32), rate)
    sf.write(folder / "short.wav", waveform[: rate // 10], rate)
    sf.write(folder / "long.wav", np.tile(waveform, 6), rate)
    (folder / "zero_bytes.wav").write_bytes(b"")
    (folder / "text.wav").write_text("this is not audio\n")
    sf.write(folder / "no_text.wav", waveform, rate)
    sf.write(folder / "stranger.wav", waveform, rate)
    (folder / "speakers.json").write_text(json.dumps({"anna": "calm", "ben": "lively"}))
    lines = ["file_name,text,speaker"]
    for name in GOOD_ROWS + tuple(BAD_ROWS):
        transcript = "" if name == "no_text.wav" else text
        lines.append(f"{name},{transcript},{'zoe' if name == 'stranger.wav' else 'anna'}")
    body = "\n".join(lines).encode() + b"\nlatin1.wav,caf\xe9 cr\xe8me,anna\n"
    (folder / "metadata.csv").write_bytes(body)
    return folder


def test_every_bad_row_is_reported_and_every_good_row_kept(hostile_folder, tmp_path):
    report = convert("audiofolder", hostile_folder, tmp_path / "out", min_seconds=0.5, max_seconds=8.0)
    rejected = [json.loads(line) for line in (tmp_path / "out" / "rejected.jsonl").read_text().splitlines()]
    by_id = {entry["id"]: entry["reason"] for entry in rejected}
    expected = {name.removesuffix(".wav"): reason for name, reason in BAD_ROWS.items()}
    expected["line16"] = "transcript is not UTF-8"
    assert by_id == expected
    assert all(entry["row"].startswith(str(hostile_folder / "metadata.csv")) for entry in rejected)
    assert report["kept"] == 3 and report["rejected"] == len(expected)
    assert report["rejected_by_reason"]["duration out of range"] == 2
    rows = load_rows(tmp_path / "out")
    assert sorted(row["id"] for row in rows) == sorted(name.removesuffix(".wav") for name in GOOD_ROWS)
    source_seconds = sf.info(hostile_folder / "good.wav").duration
    for row in rows:
        waveform, rate = _target_clip(row)
        assert rate == 24000 and waveform.shape[1] == 1
        assert abs(len(waveform) / rate - source_seconds) < 0.01


def test_fail_policy_stops_at_the_first_bad_row_with_one_line(hostile_folder, tmp_path, capsys):
    with pytest.raises(ConvertError, match=r"metadata.csv:5: non-finite samples"):
        convert("audiofolder", hostile_folder, tmp_path / "out", on_bad_row="fail")
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.partial-*"))
    with pytest.raises(SystemExit) as exit_info:
        prep_main(["convert", "audiofolder", "--data", str(hostile_folder), "--out", str(tmp_path / "o"),
                   "--on-bad-row", "fail"])
    assert exit_info.value.code == 2
    stderr = capsys.readouterr().err
    last = stderr.strip().splitlines()[-1]
    assert "Traceback" not in stderr and last.startswith("higgs-prep: error: ") and "--on-bad-row skip" in last


def test_output_holding_files_is_never_replaced_unless_it_is_an_earlier_conversion(tmp_path, spoken):
    waveform, rate, text = spoken
    (tmp_path / "lj" / "wavs").mkdir(parents=True)
    sf.write(tmp_path / "lj" / "wavs" / "a.wav", waveform, rate)
    (tmp_path / "lj" / "metadata.csv").write_text(f"a|{text}|\n")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("precious")
    with pytest.raises(ConvertError, match="--overwrite"):
        convert("ljspeech", tmp_path / "lj", tmp_path / "out")
    with pytest.raises(UserError, match="holds files that higgs-train did not write .keep.txt"):
        convert("ljspeech", tmp_path / "lj", tmp_path / "out", overwrite=True)
    assert (tmp_path / "out" / "keep.txt").read_text() == "precious"
    convert("ljspeech", tmp_path / "lj", tmp_path / "ours")
    convert("ljspeech", tmp_path / "lj", tmp_path / "ours", overwrite=True)  # ours: replaced
    assert len(load_rows(tmp_path / "ours")) == 1


def test_help_documents_each_subcommand(capsys):
    for command in ("convert", "encode", "demo", "tiny-checkpoint", "random-checkpoint"):
        with pytest.raises(SystemExit):
            prep_main([command, "--help"])
        assert "--" in capsys.readouterr().out


def test_a_folder_with_no_usable_clip_says_why_in_its_one_line(tmp_path):
    """Nothing is written when every row is rejected, so the error line itself carries the reasons."""
    (tmp_path / "af").mkdir()
    (tmp_path / "af" / "a.wav").write_text("not audio")
    (tmp_path / "af" / "metadata.csv").write_text("file_name,text\na.wav,hello there\n")
    with pytest.raises(ConvertError, match=r"no usable row \(1 rejected: 1 undecodable audio; the first: .*a\.wav"):
        convert("audiofolder", tmp_path / "af", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "metadata.csv").write_text("file_name,text\n")
    with pytest.raises(ConvertError, match=r"holds no rows"):
        convert("audiofolder", tmp_path / "empty", tmp_path / "out")
    assert not (tmp_path / "out").exists()
