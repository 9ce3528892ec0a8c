"""`higgs-prep score`: the quality scores and filtering of `ingest`, run on a dataset `convert` wrote (LJSpeech,
audiofolder, ...). Writes a new dataset folder of the kept rows (their clips copied under the same names), the
rejects listenable under rejected/, scores.jsonl, rejected.jsonl, report.json and report.html; the input is only
read. With `--asr` each clip is transcribed too: its confidence, and its CER against the dataset's transcript."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import datasets

from data_prep.quality import audio_hash, judge
from higgs_train.data.audio import load_audio
from higgs_train.data.conversations import is_prepared_dataset
from higgs_train.evaluate.metrics import Clip, measure_clip
from higgs_train.runtime import atomic, ownership
from higgs_train.runtime.errors import UserError
from higgs_train.runtime.logs import logger


def _audio_paths(messages: list[dict]) -> list[str]:
    return [item["path"] for message in messages for item in message["content"]
            if item.get("type") == "audio" and "path" in item]


def score_dataset(source: str | Path, output: str | Path, settings, overwrite: bool = False) -> dict:
    from data_prep.data_report import write_data_report, write_listings
    from data_prep.transcribe import load_transcriber

    source, output = Path(source), Path(output)
    if not is_prepared_dataset(source):
        raise UserError(f"{source}: not a dataset written by higgs-prep convert or ingest; convert it first")
    if output.exists() and not overwrite and (not output.is_dir() or any(output.iterdir())):
        raise UserError(f"{output}: already exists and is not empty; choose another --out or add --overwrite")
    ownership.check_replaceable(output, "prepared-dataset", "--out", also_ours=("codes/*",))  # encode's cache
    rows = datasets.load_from_disk(str(source)).to_list()
    transcriber = load_transcriber(settings.asr, settings.language, settings.batch_size) if settings.asr else None
    clips, bad = [], []
    for row in rows:
        messages = json.loads(row["messages"])
        try:
            waveform = load_audio(source / row["audio"])
        except Exception as error:  # noqa: BLE001 - one unreadable clip is reported, never fatal
            bad.append({"row": row["audio"], "id": row["id"], "reason": "unreadable audio", "detail": str(error)})
            continue
        heard = transcriber.transcribe([waveform])[0] if transcriber else None
        clip = Clip(waveform, waveform, row["text"], heard.text if heard else None,
                    heard.confidence if heard else None, row["text"] if heard else None)
        clips.append({"id": row["id"], "speaker": row["speaker"], "text": row["text"], "recording": row["audio"],
                      "row": row, "messages": messages, "audio_hash": audio_hash(waveform),
                      **({"asr_text": heard.text} if heard else {}), **measure_clip(clip)})
    judge(clips, settings.limits, settings.min_seconds, settings.max_seconds)
    if bad:
        logger.warning(f"{len(bad)} clips cannot be read (listed in rejected.jsonl)")
    with atomic.atomic_output(output, unique=True) as folder:
        folder.mkdir()
        for clip in clips:
            if clip["reasons"]:
                clip["audio"] = f"rejected/{Path(clip['row']['audio']).name}"
                (folder / "rejected").mkdir(exist_ok=True)
                shutil.copyfile(source / clip["row"]["audio"], folder / clip["audio"])
                continue
            clip["audio"] = clip["row"]["audio"]
            for relative in _audio_paths(clip["messages"]):
                (folder / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source / relative, folder / relative)
        kept = [clip.pop("row") for clip in clips if not clip["reasons"]]
        for clip in clips:
            clip.pop("row", None)
            clip.pop("messages")
        if not kept:
            raise UserError(f"{source}: no clip passed the checks; see the limits with --help, or loosen --limit")
        datasets.disable_progress_bars()
        datasets.Dataset.from_list(kept).save_to_disk(str(folder))
        report = {"format": "score", "source": str(source), "recorded_seconds": sum(c["seconds"] for c in clips),
                  **write_listings(folder, clips, [], bad, settings.limits)}
        (folder / "report.json").write_text(json.dumps(report, indent=2))
        write_data_report(folder, clips, [], bad, report)
        ownership.mark(folder, "prepared-dataset", record_files=True, source=str(source), format="score")
    return report

