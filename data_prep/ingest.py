"""`higgs-prep ingest`: raw recordings of any length -> a training dataset in the format `convert` writes.

Each recording: decoded and resampled to 24 kHz mono in blocks; silero-vad's speech probability read in one pass;
clips cut at pauses (`slicing`); each clip normalised to the target loudness (`loudness`), transcribed (`transcribe`),
given its span of the recording's own text where there is one (`known_text`) and scored (`CLIP_METRICS`); then
the whole set is judged (`quality`) and every clip is kept or rejected with its reasons, rejects kept listenable.

The work is content-keyed and resumable. Under the work folder (`OUT.work` unless `--work`): each finished
recording's result (`recordings/<key>.json`, the key a hash of its bytes and the cutting settings), its clips, and
every transcript (`asr/<hash of the clip's audio and the recogniser>.json`, written as it is made). Killed half way,
a re-run redoes only unfinished recordings and transcribes no clip twice. Under a launcher (`torchrun
--nproc_per_node N -m data_prep.cli ingest ...`, or several nodes on a shared file system) each process takes every
N-th recording; whichever finds every recording finished writes the dataset, the same as one process writes.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import datasets
import numpy as np
import soundfile as sf

from data_prep import known_text
from data_prep.loudness import loudness, normalize
from data_prep.quality import DEFAULT_LIMITS, audio_hash, judge
from data_prep.recordings import AudioReader, BadRecording, Recording, content_key, find_recordings
from data_prep.slicing import FRAME_SECONDS, FrameReader, plan_clips
from higgs_train.builtins.demo_data import SCENE
from higgs_train.data.audio import TARGET_SAMPLE_RATE
from higgs_train.data.tasks.layout import basic_messages
from higgs_train.evaluate.metrics import Clip, measure_clip
from higgs_train.runtime import atomic, ownership
from higgs_train.runtime.errors import UserError
from higgs_train.runtime.logs import logger
from higgs_train.runtime.progress import progress_bar

SILENCE_DBFS = -60.0  # a stretch whose loudest 32 ms frame is below this is silence, not noise
WORK_VERSION = 1  # part of every recording key: a change of how recordings are cut invalidates cached work


class IngestError(UserError):
    """The ingest cannot go on; the message names the path and the fix."""


@dataclass
class Settings:
    min_seconds: float = 1.0
    max_seconds: float = 20.0
    pad: float = 0.1
    min_pause: float = 0.3
    target_lufs: float = -23.0
    peak_dbfs: float = -1.0
    asr: str = "openai/whisper-large-v3-turbo"
    language: str | None = None
    batch_size: int = 8
    speaker_model: str | None = None
    limits: dict = field(default_factory=lambda: dict(DEFAULT_LIMITS))

    def cutting_key(self) -> str:
        """What a recording's cached result depends on (the limits do not: they only judge)."""
        fields = (WORK_VERSION, self.min_seconds, self.max_seconds, self.pad, self.min_pause, self.target_lufs,
                  self.peak_dbfs, self.asr, self.language, self.speaker_model)
        return hashlib.sha1(repr(fields).encode()).hexdigest()[:16]


def default_work_folder(output: Path) -> Path:
    return output.with_name(output.name + ".work")


class _Workers:
    """The models one process loads once: silero-vad, the recogniser, the speaker model."""

    def __init__(self, settings: Settings):
        from data_prep.transcribe import load_transcriber
        from higgs_train.evaluate.judges import SpeakerJudge

        self.frames = FrameReader()
        self.asr = load_transcriber(settings.asr, settings.language, settings.batch_size)
        self.speaker = None
        if settings.speaker_model:
            self.speaker = SpeakerJudge.load(settings.speaker_model)
            if self.speaker is None:
                raise IngestError(f"--speaker-model {settings.speaker_model}: cannot be loaded (see above); give a "
                                  "local speaker-embedding checkpoint or leave it out")
        self.transcribed_now = 0


def _write_flac(path: Path, waveform: np.ndarray) -> None:
    with atomic.atomic_output(path, unique=True) as partial:
        sf.write(str(partial), waveform, TARGET_SAMPLE_RATE, format="FLAC")


def _transcripts(work: Path, workers: _Workers, clips: list[np.ndarray], hashes: list[str]) -> list[dict]:
    """Each clip's transcript, from the cache or made now (and cached at once, so a kill loses none)."""
    folder = work / "asr"
    folder.mkdir(parents=True, exist_ok=True)
    keys = [hashlib.sha1(f"{h}\0{workers.asr.identity}".encode()).hexdigest() for h in hashes]
    found = {}
    for key in keys:
        with contextlib.suppress(OSError, ValueError):
            found[key] = json.loads((folder / f"{key}.json").read_text())
    missing = [i for i, key in enumerate(keys) if key not in found]
    for index, transcript in zip(missing, workers.asr.transcribe([clips[i] for i in missing])):
        found[keys[index]] = asdict(transcript)
        atomic.write_text(folder / f"{keys[index]}.json", json.dumps(found[keys[index]]))
        workers.transcribed_now += 1
    return [found[key] for key in keys]


def _stretch_kind(level_db: np.ndarray) -> str:
    return "no speech: silence" if not len(level_db) or level_db.max() < SILENCE_DBFS else "no speech: noise"


def _clip_batches(reader: AudioReader, spans: list, settings: Settings, key: str, clips_folder: Path):
    """Batches (--batch-size) of (record, recorded clip, normalised clip), read and normalised in turn, so a long
    recording's clips are never all in memory; each normalised clip is written to the work folder."""
    for first in range(0, len(spans), settings.batch_size):
        batch = []
        for number in range(first, min(first + settings.batch_size, len(spans))):
            start, end = spans[number]
            recorded = reader.span(start, end)
            waveform, before, gain = normalize(recorded, settings.target_lufs, settings.peak_dbfs)
            name = f"{key}-{number:04d}.flac"
            _write_flac(clips_folder / name, waveform)
            batch.append(({"n": number, "start": round(start, 3), "end": round(end, 3), "work_clip": name,
                           "audio_hash": audio_hash(waveform), "loudness_recorded": round(before, 2),
                           "gain_db": round(gain, 2), "loudness": round(loudness(waveform), 2)}, recorded, waveform))
        yield batch


def _with_known_text(recording: Recording, records: list[dict], clips_folder: Path) -> None:
    """Each clip's text becomes its span of the recording's own text; the text-dependent scores are measured again
    (clipping, read from the audio as recorded, stays as measured)."""
    try:
        book = known_text.align(recording.text_path.read_text(encoding="utf-8"), [r["asr_text"] for r in records],
                                [r["seconds"] for r in records])
    except ValueError as error:
        raise BadRecording("known text does not fit", f"{recording.text_path}: {error}; check that it is this "
                           "recording's text") from None
    for record, (text, match) in zip(records, book):
        waveform, _ = sf.read(str(clips_folder / record["work_clip"]), dtype="float32")
        record.update({"text": text, "text_match": round(match, 4), **measure_clip(
            Clip(waveform, None, text, record["asr_text"], record.get("asr_confidence"), text))})


def _process(recording: Recording, key: str, work: Path, settings: Settings, workers: _Workers,
             progress) -> dict:
    """The result of one recording: its clips (scored, not yet judged) and its stretches without speech."""
    clips_folder = work / "clips"
    clips_folder.mkdir(parents=True, exist_ok=True)
    reader = AudioReader(recording.path)
    try:
        hours = reader.seconds / 3600

        def blocks():  # the first half of a recording's progress: reading it and finding its speech
            for block in reader.blocks():
                progress.update(len(block) / TARGET_SAMPLE_RATE / 3600 / 2)
                yield block

        frames = workers.frames.read(blocks())
        spans, gaps = plan_clips(frames, settings.min_seconds, settings.max_seconds, settings.pad,
                                 settings.min_pause)
        if not spans:
            kind = "all silence" if not len(frames.level_db) or frames.level_db.max() < SILENCE_DBFS \
                else "no speech found"
            raise BadRecording(kind, f"{recording.path}: {kind} ({reader.seconds:.1f} s); nothing to cut from it")
        records = []
        for batch in _clip_batches(reader, spans, settings, key, clips_folder):
            transcripts = _transcripts(work, workers, [w for _, _, w in batch], [r["audio_hash"] for r, _, _ in batch])
            for (record, recorded, waveform), transcript in zip(batch, transcripts):
                clip = Clip(waveform, recorded, transcript["text"], transcript["text"], transcript["confidence"])
                record.update({"text": transcript["text"], "asr_text": transcript["text"],
                               "language": transcript["language"], **measure_clip(clip)})
                if workers.speaker is not None:
                    record["speaker_embedding"] = [round(float(v), 5) for v in workers.speaker.embed(waveform)]
                records.append(record)
            progress.update(hours / 2 * len(batch) / len(spans))  # the second half: its clips
        stretches = []
        for number, (start, end) in enumerate(gaps):
            name = f"{key}-gap{number:03d}.flac"
            _write_flac(clips_folder / name, reader.span(start, min(end, start + settings.max_seconds)))
            level = frames.level_db[int(start / FRAME_SECONDS):int(end / FRAME_SECONDS)]
            stretches.append({"n": number, "start": round(start, 3), "end": round(end, 3), "work_clip": name,
                              "reason": _stretch_kind(level)})
    finally:
        reader.close()
    if recording.text_path is not None:
        _with_known_text(recording, records, clips_folder)
    return {"clips": records, "stretches": stretches, "seconds": round(reader.seconds, 3)}


def _result_path(work: Path, key: str) -> Path:
    return work / "recordings" / f"{key}.json"


def _recording_key(recording: Recording, settings: Settings) -> str:
    """The recording's bytes, its known text's bytes and the settings its result depends on."""
    text = content_key(recording.text_path) if recording.text_path is not None else ""
    return hashlib.sha1(f"{content_key(recording.path)}\0{text}\0{settings.cutting_key()}".encode()).hexdigest()[:24]


def _run_share(recordings: list[Recording], keys: list[str], work: Path, settings: Settings, rank: int,
               world: int) -> dict:
    """Processes this process's recordings (every `world`-th from `rank`) that have no finished result."""
    mine = [(r, k) for index, (r, k) in enumerate(zip(recordings, keys)) if index % world == rank]
    todo = [(r, k) for r, k in mine if not _result_path(work, k).is_file()]
    hours = 0.0
    for recording, _ in todo:
        with contextlib.suppress(Exception):
            hours += sf.info(str(recording.path)).duration / 3600
    for stale in atomic.remove_stale_partials(work / "clips" / "*"):
        logger.info(f"removed {stale}, left by an ingest that did not finish")
    workers = _Workers(settings) if todo else None
    progress = progress_bar(total=round(hours, 4), desc="ingesting",
                    bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.3f}/{total:.3f} h of audio "
                               "[{elapsed}<{remaining}]")
    for recording, key in todo:
        try:
            result = _process(recording, key, work, settings, workers, progress)
        except BadRecording as error:
            logger.warning(f"skipped {error}")
            result = {"error": {"reason": error.reason, "detail": str(error)}}
        result.update({"recording": str(recording.path), "speaker": recording.speaker})
        atomic.write_text(_result_path(work, key), json.dumps(result, ensure_ascii=False))
    progress.close()
    return {"recordings_done_now": len(todo), "transcribed_now": workers.transcribed_now if workers else 0}


def _names(recordings: list[Recording], source: Path) -> list[str]:
    """A file-name-safe, unique stem per recording (its path under the input, so two speakers' `01.wav` differ)."""
    names, taken = [], set()
    for recording in recordings:
        relative = recording.path.relative_to(source) if source.is_dir() else Path(recording.path.name)
        name = re.sub(r"[^\w.-]", "_", str(relative.with_suffix("")).replace(os.sep, "__"))
        while name.lower() in taken:
            name += "_"
        taken.add(name.lower())
        names.append(name)
    return names


def _assemble(recordings: list[Recording], keys: list[str], source: Path, work: Path, output: Path,
              settings: Settings, empty_folders: list[Path]) -> dict:
    """Writes OUT (dataset + clips/ + rejected/ + scores.jsonl + rejected.jsonl + report.json + report.html)."""
    from data_prep.data_report import write_data_report, write_listings

    results = [json.loads(_result_path(work, key).read_text()) for key in keys]
    clips, bad, stretches = [], [], []
    for recording, name, result in zip(recordings, _names(recordings, source), results):
        if "error" in result:
            bad.append({"row": str(recording.path), "id": name, **result["error"]})
            continue
        for record in result["clips"]:
            clips.append({**record, "id": f"{name}-{record['n']:04d}", "speaker": recording.speaker,
                          "recording": str(recording.path)})
        for stretch in result["stretches"]:
            stretches.append({**stretch, "id": f"{name}-gap{stretch['n']:03d}", "speaker": recording.speaker,
                              "recording": str(recording.path)})
    bad += [{"row": str(folder), "id": folder.name, "reason": "folder with no audio",
             "detail": f"{folder}: holds no audio file"} for folder in empty_folders]
    judge(clips, settings.limits, settings.min_seconds, settings.max_seconds)
    kept = [c for c in clips if not c["reasons"]]
    if not kept:
        raise IngestError(f"{source}: no clip passed the checks ({len(clips)} clips, {len(bad)} bad recordings); "
                          f"see {work}/recordings for the scores, or loosen --limit")
    for stale in atomic.remove_stale_partials(output):
        logger.info(f"removed {stale}, left by an ingest that did not finish")
    with atomic.atomic_output(output, unique=True) as folder:
        (folder / "clips").mkdir(parents=True)
        (folder / "rejected").mkdir()
        for clip in clips:
            clip["audio"] = f"{'clips' if not clip['reasons'] else 'rejected'}/{clip['id']}.flac"
            shutil.copyfile(work / "clips" / clip["work_clip"], folder / clip["audio"])
        for stretch in stretches:
            stretch["audio"] = f"rejected/{stretch['id']}.flac"
            shutil.copyfile(work / "clips" / stretch["work_clip"], folder / stretch["audio"])
        rows = [{"id": c["id"], "speaker": c["speaker"], "text": c["text"], "audio": c["audio"],
                 "seconds": c["seconds"],
                 "messages": json.dumps(basic_messages(c["text"], {"path": c["audio"]}, SCENE), ensure_ascii=False)}
                for c in kept]
        datasets.disable_progress_bars()
        datasets.Dataset.from_list(rows).save_to_disk(str(folder))
        report = {"format": "ingest", "source": str(source), "recordings": len(recordings),
                  "recorded_seconds": round(sum(r.get("seconds", 0) for r in results), 2),
                  **write_listings(folder, clips, stretches, bad, settings.limits), "settings": asdict(settings),
                  "inputs_key": hashlib.sha1("".join(keys).encode()).hexdigest()}
        (folder / "report.json").write_text(json.dumps(report, indent=2))
        write_data_report(folder, clips, stretches, bad, report)
        ownership.mark(folder, "prepared-dataset", record_files=True, source=str(source), format="ingest")
    return report


@contextlib.contextmanager
def _assembly_lock(work: Path):
    """True for the one process that may write the dataset now (the lock dies with its holder)."""
    with open(work / "assemble.lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True


def ingest(source: str | Path, output: str | Path, settings: Settings, speaker: str | None = None,
           work: str | Path | None = None, overwrite: bool = False) -> dict:
    """Ingests this process's share; writes OUT when every recording is done. Returns counts (and `report`
    when this process wrote the dataset)."""
    source, output = Path(source), Path(output)
    work = Path(work) if work else default_work_folder(output)
    if output.exists() and not overwrite and (not output.is_dir() or any(output.iterdir())):
        raise IngestError(f"{output}: already exists and is not empty; choose another --out or add --overwrite")
    ownership.check_replaceable(output, "prepared-dataset", "--out", also_ours=("codes/*",))  # encode's cache
    ownership.check_resumable(work, "ingest-work", "--work")
    if output.resolve() in (source.resolve(), *source.resolve().parents):
        raise IngestError(f"--out {output} holds the input {source}; write the dataset to a folder of its own")
    recordings, empty_folders = find_recordings(source, speaker)
    work.mkdir(parents=True, exist_ok=True)
    if not (work / ownership.MARKER).is_file():
        ownership.mark(work, "ingest-work", output=str(output))
    keys = [_recording_key(recording, settings) for recording in recordings]
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    counts = _run_share(recordings, keys, work, settings, rank, world)
    counts.update({"process": f"{rank} of {world}", "recordings": len(recordings), "work": str(work)})
    if not all(_result_path(work, key).is_file() for key in keys):
        return counts  # another process still works; whichever finishes last writes the dataset
    with _assembly_lock(work) as mine:
        if not mine:
            return counts
        done = output / "report.json"
        inputs_key = hashlib.sha1("".join(keys).encode()).hexdigest()
        if world > 1 and done.is_file() and json.loads(done.read_text()).get("inputs_key") == inputs_key:
            return counts  # another process of this launch wrote it already
        counts["report"] = _assemble(recordings, keys, source, work, output, settings, empty_folders)
    return counts
