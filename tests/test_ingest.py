"""`higgs-prep ingest` and `score` on recordings made here: espeak-ng speaks known sentences between pauses, with
silence, loud noise, an over-driven and a quiet sentence in it (higgs_train/builtins/long_recording.py). Real models:
silero-vad's own, pocketsphinx's English recogniser for real transcripts, and a tiny random Whisper for the
Transformers code path."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data_prep.ingest import Settings, ingest
from data_prep.loudness import loudness
from data_prep.quality import DEFAULT_LIMITS, parse_limits
from data_prep.slicing import FRAME_SECONDS, Frames, plan_clips
from higgs_train.builtins.long_recording import SENTENCES, compressed_stereo_copy, make_recording
from higgs_train.builtins.tiny_whisper import write_tiny_whisper
from higgs_train.data.conversations import load_rows
from higgs_train.runtime.errors import UserError

EDGE_TOLERANCE = 0.25  # seconds between a clip's edge and the speech it holds
POCKETSPHINX_CER_BOUND = 0.70  # measured: mean CER 0.59 over the 20 espeak-ng sentences (pocketsphinx 5.1.1)
ROOT = Path(__file__).resolve().parents[1]


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "data_prep.cli", *args], capture_output=True, text=True,
                          timeout=600, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    """alice/book.wav with its book text, and beside it every kind of bad input."""
    folder = tmp_path_factory.mktemp("raw")
    (folder / "alice").mkdir()
    recording = make_recording(folder / "alice" / "book.wav")
    (folder / "alice" / "book.txt").write_text(" ".join(SENTENCES) + "\n")
    broken = folder / "broken"
    broken.mkdir()
    (broken / "empty.wav").write_bytes(b"")
    (broken / "notes.wav").write_text("these are my notes, not audio\n")
    (broken / "corrupt.flac").write_bytes(b"fLaC" + bytes(range(256)) * 8)
    sf.write(broken / "silence.wav", np.zeros(24000 * 5, np.float32), 24000)
    (folder / "no_audio_here").mkdir()
    (folder / "no_audio_here" / "readme.txt").write_text("nothing to hear\n")
    return folder, recording


@pytest.fixture(scope="module")
def ingested(raw, tmp_path_factory):
    """The real recogniser's run through the command line (cer's limit lifted: pocketsphinx hears espeak poorly)."""
    folder, recording = raw
    out = tmp_path_factory.mktemp("ingested") / "voice"
    result = _cli("ingest", "--data", str(folder), "--out", str(out), "--asr", "pocketsphinx",
                  "--limit", "cer=1")
    assert result.returncode == 0, result.stderr[-3000:]
    return out, recording, result


def _clip_of(scores: list[dict], span: tuple[float, float]) -> list[dict]:
    return [c for c in scores if c["start"] < span[1] and c["end"] > span[0]]


@pytest.mark.slow
def test_every_sentence_lands_whole_in_one_clip_cut_in_its_pauses(ingested):
    out, recording, _ = ingested
    scores = _jsonl(out / "scores.jsonl")
    assert len(scores) == len(recording.sentences)
    for span in recording.spans:
        (clip,) = _clip_of(scores, span)  # exactly one clip holds any of it
        assert clip["start"] <= span[0] and clip["end"] >= span[1], (clip, span)  # no sentence cut
        assert span[0] - clip["start"] <= EDGE_TOLERANCE and clip["end"] - span[1] <= EDGE_TOLERANCE, (clip, span)


@pytest.mark.slow
def test_noise_and_silence_are_rejected_with_their_reasons_and_stay_listenable(ingested):
    out, recording, _ = ingested
    rejected = _jsonl(out / "rejected.jsonl")
    for reason, span in (("no speech: silence", recording.silence), ("no speech: noise", recording.noise)):
        (entry,) = [r for r in rejected if r["reason"] == reason]
        start, end = map(float, entry["detail"].split(" s ")[0].split("-"))
        assert start <= span[0] and end >= span[1]
        assert sf.info(out / entry["audio"]).duration >= span[1] - span[0]
        assert not _clip_of(_jsonl(out / "scores.jsonl"), span)


@pytest.mark.slow
def test_the_clipped_sentence_is_flagged_and_the_quiet_one_comes_out_at_the_target_loudness(ingested):
    out, recording, _ = ingested
    scores = _jsonl(out / "scores.jsonl")
    (clipped,) = _clip_of(scores, recording.spans[recording.clipped])
    assert clipped["reasons"] == [f"clipping_share above {DEFAULT_LIMITS['clipping_share']:g}"]
    assert [c["id"] for c in scores if c["reasons"]] == [clipped["id"]]
    (quiet,) = _clip_of(scores, recording.spans[recording.quiet])
    waveform, _ = sf.read(out / quiet["audio"], dtype="float32")
    assert quiet["loudness_recorded"] < -38 and abs(loudness(waveform) - -23.0) <= 1.0


@pytest.mark.slow
def test_known_text_gives_each_clip_its_sentence_word_for_word(ingested):
    out, recording, _ = ingested
    assert [c["text"] for c in _jsonl(out / "scores.jsonl")] == recording.sentences


@pytest.mark.slow
def test_the_real_recogniser_transcribes_within_its_measured_error(ingested):
    out, _, _ = ingested
    scores = _jsonl(out / "scores.jsonl")
    assert all(c["asr_text"] for c in scores)
    assert np.mean([c["cer"] for c in scores]) <= POCKETSPHINX_CER_BOUND


@pytest.mark.slow
def test_bad_inputs_are_one_line_each_counted_and_nothing_is_lost(raw, ingested):
    folder, _ = raw
    out, _, result = ingested
    report = json.loads((out / "report.json").read_text())
    assert report["bad_inputs_by_reason"] == {"empty file": 1, "not audio": 2, "all silence": 1,
                                              "folder with no audio": 1}
    skipped = [line for line in result.stdout.splitlines() if "skipped" in line]
    assert len(skipped) == 4 and all("broken" in line for line in skipped), result.stdout[-2000:]
    assert sorted(p.name for p in (folder / "broken").iterdir()) == ["corrupt.flac", "empty.wav", "notes.wav",
                                                                     "silence.wav"]
    assert (folder / "no_audio_here" / "readme.txt").is_file()


@pytest.mark.slow
def test_the_dataset_is_training_data_as_convert_writes_it(ingested, tiny_checkpoint, tmp_path):
    from data_prep.encode import encode_dataset
    from higgs_train.model.loading import load_audio_tokenizer

    out, recording, result = ingested
    rows = load_rows(out)
    assert len(rows) == len(recording.sentences) - 1  # the clipped one is rejected
    audio = rows[0]["messages"][-1]["content"][0]
    assert Path(audio["path"]).is_file() and sf.info(audio["path"]).samplerate == 24000
    assert f"higgs-prep encode --data {out}" in result.stdout
    copy = shutil.copytree(out, tmp_path / "voice")  # encode writes its cache inside the dataset
    report = encode_dataset(copy, load_audio_tokenizer(str(tiny_checkpoint)))
    assert report["encoded"] == len(rows) and not report["unreadable"]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs chromium (scripts/setup.sh --dev)")
def test_the_data_report_opens_with_its_counts_and_players(ingested):
    from browser import open_in_chromium

    out, _, _ = ingested
    page = (out / "report.html").read_text()
    assert "<td class='text'>kept</td><td>19</td>" in page and "clipping_share above 0.001" in page
    checked, console = open_in_chromium(out / "report.html")
    assert checked["audio"] >= 10 and checked["missing"] == 0 and checked["broken_images"] == 0, console


@pytest.fixture(scope="module")
def whisper(tmp_path_factory):
    return write_tiny_whisper(tmp_path_factory.mktemp("whisper") / "tiny-whisper")


def _tiny_speaker_model(folder: Path) -> Path:
    import torch
    from transformers import Wav2Vec2FeatureExtractor, WavLMConfig, WavLMForXVector

    torch.manual_seed(0)
    config = WavLMConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                         conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 8), num_conv_pos_embeddings=16,
                         num_conv_pos_embedding_groups=2, tdnn_dim=(16, 16), tdnn_kernel=(3, 1),
                         tdnn_dilation=(1, 1), xvector_output_dim=8, num_buckets=16, max_bucket_distance=50)
    WavLMForXVector(config).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(sampling_rate=16000).save_pretrained(folder)
    return folder


@pytest.mark.slow
def test_a_compressed_stereo_44k_copy_is_cut_the_same_and_whisper_transcribes_it(raw, ingested, whisper, tmp_path):
    folder, recording = raw
    source = tmp_path / "ogg"
    source.mkdir()
    compressed_stereo_copy(folder / "alice" / "book.wav", source / "book.ogg")
    counts = ingest(source, tmp_path / "out", Settings(
        asr=str(whisper), speaker_model=str(_tiny_speaker_model(tmp_path / "wavlm")),
        limits=parse_limits(["asr_confidence=0", "snr_db=0", "rate_deviation=100", "speaker_distance=2"])))
    scores = _jsonl(tmp_path / "out" / "scores.jsonl")
    assert all(0 <= c["speaker_distance"] <= 2 for c in scores)  # measured against the speaker's centroid
    assert counts["transcribed_now"] == len(scores) == len(recording.sentences)
    for span in recording.spans:
        (clip,) = _clip_of(scores, span)
        assert span[0] - EDGE_TOLERANCE <= clip["start"] <= span[0] and span[1] <= clip["end"] <= \
            span[1] + EDGE_TOLERANCE
    assert all(0 < c["asr_confidence"] <= 1 and c["language"] in ("en", "fr") for c in scores)


@pytest.fixture(scope="module")
def three_recordings(tmp_path_factory):
    folder = tmp_path_factory.mktemp("three")
    for index in range(3):
        make_recording(folder / f"part{index}.wav", SENTENCES[index * 5:index * 5 + 5], seed=index, clipped=-1,
                       quiet=-1)
    return folder


def _tiny_settings(whisper) -> list[str]:
    return ["--asr", str(whisper), "--limit", "asr_confidence=0"]


@pytest.fixture(scope="module")
def one_process(three_recordings, whisper, tmp_path_factory):
    out = tmp_path_factory.mktemp("one") / "voice"
    result = _cli("ingest", "--data", str(three_recordings), "--out", str(out), *_tiny_settings(whisper))
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def _same_dataset(a: Path, b: Path) -> None:
    assert (a / "scores.jsonl").read_text() == (b / "scores.jsonl").read_text()
    assert (a / "rejected.jsonl").read_text() == (b / "rejected.jsonl").read_text()
    assert [r["messages"] for r in load_rows(a)] != []
    assert [(r["id"], r["messages"][2]) for r in load_rows(a)] == [(r["id"], r["messages"][2]) for r in load_rows(b)]
    files = sorted(p.relative_to(a) for p in a.rglob("*.flac"))
    assert files == sorted(p.relative_to(b) for p in b.rglob("*.flac")) and files
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)


@pytest.mark.slow
def test_killed_half_way_a_rerun_gives_the_same_dataset_and_transcribes_nothing_twice(three_recordings, whisper,
                                                                                        one_process, tmp_path):
    out = tmp_path / "voice"
    work = tmp_path / "voice.work"
    process = subprocess.Popen([sys.executable, "-m", "data_prep.cli", "ingest", "--data", str(three_recordings),
                                "--out", str(out), *_tiny_settings(whisper)], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 300
    while not list((work / "recordings").glob("*.json")) and time.time() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not out.exists() and len(list((work / "recordings").glob("*.json"))) < 3  # killed half way
    transcribed_before = len(list((work / "asr").glob("*.json")))
    counts = ingest(three_recordings, out, Settings(asr=str(whisper), limits=parse_limits(["asr_confidence=0"])))
    clips = len(_jsonl(out / "scores.jsonl"))
    assert transcribed_before > 0 and counts["transcribed_now"] == clips - transcribed_before
    assert len(list((work / "asr").glob("*.json"))) == clips
    _same_dataset(out, one_process)
    again = ingest(three_recordings, out, Settings(asr=str(whisper), limits=parse_limits(["asr_confidence=0"])),
                   overwrite=True)
    assert again["transcribed_now"] == 0 and again["recordings_done_now"] == 0
    _same_dataset(out, one_process)


@pytest.mark.slow
def test_two_processes_give_the_one_process_output(three_recordings, whisper, one_process, tmp_path):
    out = tmp_path / "voice"
    processes = [subprocess.Popen([sys.executable, "-m", "data_prep.cli", "ingest", "--data", str(three_recordings),
                                   "--out", str(out), *_tiny_settings(whisper)], cwd=ROOT, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  env={**os.environ, "OMP_NUM_THREADS": "1", "RANK": str(rank), "WORLD_SIZE": "2"})
                 for rank in range(2)]
    outputs = [p.communicate(timeout=600) for p in processes]
    assert all(p.returncode == 0 for p in processes), [e[-2000:] for _, e in outputs]
    assert sum("the dataset is in" in o for o, _ in outputs) == 1  # one process wrote it
    results = [json.loads(p.read_text()) for p in (tmp_path / "voice.work" / "recordings").glob("*.json")]
    assert len(results) == 3
    _same_dataset(out, one_process)


def test_a_run_of_speech_longer_than_the_maximum_is_cut_at_its_quietest_point():
    speech = np.ones(1000, np.float32)  # 32 s of speech, one frame of it quieter than the rest
    level = np.full(1000, -20.0)
    level[400] = -45.0
    clips, _ = plan_clips(Frames(speech, level), min_seconds=1.0, max_seconds=20.0, pad=0.1, min_pause=0.3)
    assert [round(start / FRAME_SECONDS) for start, _ in clips] == [0, 400]
    assert all(end - start <= 20.0 for start, end in clips)


def test_short_utterances_join_their_nearer_neighbour_and_long_silence_is_listed():
    speech = np.zeros(400, np.float32)
    speech[10:60] = 1  # 1.6 s
    speech[75:85] = 1  # 0.32 s, 0.48 s after it: joins it
    speech[300:380] = 1  # after 6.8 s without speech
    clips, gaps = plan_clips(Frames(speech, np.full(400, -30.0)), 1.0, 20.0, 0.1, 0.3)
    assert len(clips) == 2 and clips[0][1] >= 85 * FRAME_SECONDS and len(gaps) == 1


def test_a_clip_far_from_its_speakers_centroid_is_rejected():
    from data_prep.quality import judge

    voice = np.array([1.0, 0.2, 0.0])
    records = [{"id": str(i), "speaker": "anna", "seconds": 3.0, "text": f"sentence {i}", "audio_hash": str(i),
                "speaker_embedding": list(voice + 0.05 * np.random.RandomState(i).randn(3))} for i in range(6)]
    records[4]["speaker_embedding"] = [0.0, -0.3, 1.0]  # another voice
    judge(records, DEFAULT_LIMITS, 1.0, 20.0)
    assert [r["reasons"] for r in records] == [[]] * 4 + [["speaker_distance above 0.5"]] + [[]]


def test_an_unknown_limit_is_one_clear_error():
    with pytest.raises(UserError, match="unknown score 'snr'.*snr_db"):
        parse_limits(["snr=3"])


@pytest.mark.slow
def test_score_filters_a_converted_dataset_the_same_way_and_only_reads_it(tmp_path):
    from data_prep.convert import convert
    from data_prep.score import score_dataset
    from higgs_train.builtins.long_recording import speak

    source = tmp_path / "audiofolder"
    source.mkdir()
    lines = ["file_name,text"]
    for index, text in enumerate(SENTENCES[:6]):
        speech = speak(text) / 2
        if index == 2:
            speech = np.clip(speech * 10, -1, 1)  # over-driven
        sf.write(source / f"{index}.wav", speech, 24000)
        lines.append(f"{index}.wav,{text}")
    shutil.copyfile(source / "0.wav", source / "copy.wav")
    lines.append(f"copy.wav,{SENTENCES[0]}")  # the same clip twice
    (source / "metadata.csv").write_text("\n".join(lines) + "\n")
    convert("audiofolder", source, tmp_path / "converted")
    before = {p: p.read_bytes() for p in (tmp_path / "converted").rglob("*") if p.is_file()}
    report = score_dataset(tmp_path / "converted", tmp_path / "scored",
                           Settings(asr=None, limits=parse_limits(["rate_deviation=100"])))
    assert report["kept"] == 5 and report["rejected_by_reason"] == {"clipping_share above 0.001": 1,
                                                                    "duplicate audio": 1}
    assert sorted(r["id"] for r in load_rows(tmp_path / "scored")) == ["0", "1", "3", "4", "5"]
    assert len(list((tmp_path / "scored" / "rejected").glob("*.flac"))) == 2
    assert before == {p: p.read_bytes() for p in (tmp_path / "converted").rglob("*") if p.is_file()}


def test_a_folder_without_audio_or_a_foreign_output_is_one_line_and_nothing_is_touched(tmp_path, capsys):
    from data_prep.cli import main

    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "notes.txt").write_text("no audio\n")
    with pytest.raises(SystemExit) as exit_code:
        main(["ingest", "--data", str(tmp_path / "raw"), "--out", str(tmp_path / "out")])
    error = capsys.readouterr().err.strip()
    assert exit_code.value.code == 2 and "\n" not in error and "raw: no audio files" in error
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("the user's\n")
    sf.write(tmp_path / "raw" / "a.wav", np.zeros(24000, np.float32), 24000)
    with pytest.raises(SystemExit):
        main(["ingest", "--data", str(tmp_path / "raw"), "--out", str(tmp_path / "mine"), "--overwrite"])
    assert "did not write" in capsys.readouterr().err and (tmp_path / "mine" / "keep.txt").is_file()
