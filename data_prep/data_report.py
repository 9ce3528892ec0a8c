"""`report.html` of an ingested (or scored) dataset: enough to choose the thresholds. Hours and clips kept and
rejected by reason, histograms of the scores with their limits, per-speaker totals, and the worst clips of each kind
with audio players and transcripts. Offline like the run's report.html: images inlined, the audio is the dataset's
own clips/ and rejected/, and the page itself checks that every player loads."""

from __future__ import annotations

import html
import json
from collections import Counter, defaultdict
from pathlib import Path

from data_prep.quality import HIGHER_IS_BETTER, reason_kind
from higgs_train.evaluate.report import CHECK, STYLE, _png
from higgs_train.runtime import atomic

HISTOGRAMS = (("seconds", "duration (s)"), ("snr_db", "estimated SNR (dB)"),
              ("chars_per_second", "speech rate (letters/s)"), ("cer", "CER against the known text"),
              ("asr_confidence", "ASR confidence"), ("speaker_distance", "distance from the speaker's centroid"))
WORST = ("snr_db", "clipping_share", "silent_share", "cer", "asr_confidence", "rate_deviation", "speaker_distance",
         "trailing_silence")
WORST_SHOWN = 5


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.3f} h"


def _histogram(clips: list[dict], name: str, label: str, limit: float | None) -> str | None:
    import matplotlib.pyplot as plt

    kept = [c[name] for c in clips if c.get(name) is not None and not c["reasons"]]
    rejected = [c[name] for c in clips if c.get(name) is not None and c["reasons"]]
    if not kept and not rejected:
        return None
    figure, axis = plt.subplots(figsize=(5, 2.6))
    axis.hist([kept, rejected], bins=30, stacked=True, label=["kept", "rejected"], color=["#4a8", "#d66"])
    if limit is not None:
        axis.axvline(limit, color="k", linestyle="--", label=f"limit {limit:g}")
    axis.set_xlabel(label)
    axis.set_ylabel("clips")
    axis.legend(fontsize=7)
    return f'<img alt="{html.escape(name)}" src="{_png(figure)}">'


def _player(clip: dict, value: str) -> str:
    status = "kept" if not clip.get("reasons") else "rejected: " + "; ".join(clip["reasons"])
    text = clip.get("text") or ""
    heard = clip.get("asr_text")
    heard_line = f"<br>ASR: {html.escape(heard)}" if heard is not None and heard != text else ""
    return (f"<div class='sample'><b>{html.escape(clip['id'])}</b> {value} ({html.escape(status)})<br>"
            f"<audio controls preload='metadata' src='{html.escape(clip['audio'])}'></audio><br>"
            f"{html.escape(text)}{heard_line}</div>")


def _table(header: tuple[str, ...], rows: list[tuple]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td class='text'>{html.escape(str(v))}</td>" if i == 0 else
                                    f"<td>{html.escape(str(v))}</td>" for i, v in enumerate(row)) + "</tr>"
                   for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def write_listings(folder: Path, clips: list[dict], stretches: list[dict], bad: list[dict], limits: dict) -> dict:
    """Writes `scores.jsonl` (every clip, its scores and reasons) and `rejected.jsonl` (convert's format, plus the
    reject's audio); returns the counts for report.json."""
    with open(folder / "scores.jsonl", "w", encoding="utf-8") as handle:
        for clip in clips:
            public = {k: v for k, v in clip.items() if k not in ("work_clip", "speaker_embedding", "source_audio")}
            handle.write(json.dumps(public, ensure_ascii=False) + "\n")
    rejected = [{"row": c["recording"], "id": c["id"], "reason": reason_kind(c["reasons"][0]),
                 "detail": "; ".join(c["reasons"]), "audio": c["audio"]} for c in clips if c["reasons"]]
    rejected += [{"row": s["recording"], "id": s["id"], "reason": s["reason"],
                  "detail": f"{s['start']:.2f}-{s['end']:.2f} s of the recording", "audio": s["audio"]}
                 for s in stretches]
    with open(folder / "rejected.jsonl", "w", encoding="utf-8") as handle:
        for entry in rejected + bad:
            handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
    kept = [c for c in clips if not c["reasons"]]
    return {"kept": len(kept), "rejected": len(clips) - len(kept), "bad_inputs": len(bad),
            "rejected_by_reason": dict(Counter(reason_kind(r) for c in clips for r in c["reasons"])),
            "no_speech_stretches": dict(Counter(s["reason"] for s in stretches)),
            "bad_inputs_by_reason": dict(Counter(b["reason"] for b in bad)),
            "audio_seconds": round(sum(c["seconds"] for c in kept), 2),
            "rejected_seconds": round(sum(c["seconds"] for c in clips if c["reasons"]), 2), "limits": limits}


def write_data_report(folder: Path, clips: list[dict], stretches: list[dict], bad: list[dict],
                      report: dict) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    limits = report["limits"]
    kept = [c for c in clips if not c["reasons"]]
    summary = _table(("", "clips", "hours"), [
        ("kept", len(kept), _hours(sum(c["seconds"] for c in kept))),
        ("rejected", len(clips) - len(kept), _hours(sum(c["seconds"] for c in clips if c["reasons"]))),
        ("stretches without speech", len(stretches), _hours(sum(s["end"] - s["start"] for s in stretches))),
        ("bad inputs (recordings, folders)", len(bad), "")])
    by_reason: dict[str, list[float]] = defaultdict(list)
    for clip in clips:
        for reason in {reason_kind(r) for r in clip["reasons"]}:
            by_reason[reason].append(clip["seconds"])
    reasons = _table(("reason (a clip may have several)", "clips", "hours"),
                     [(r, len(s), _hours(sum(s))) for r, s in sorted(by_reason.items(), key=lambda x: -len(x[1]))]
                     + [(k, n, "") for k, n in Counter(s["reason"] for s in stretches).items()]
                     + [(k, n, "") for k, n in Counter(b["reason"] for b in bad).items()])
    speakers: dict[str, list[dict]] = defaultdict(list)
    for clip in clips:
        speakers[str(clip["speaker"])].append(clip)
    per_speaker = _table(("speaker", "clips kept", "hours kept", "clips rejected"), [
        (name, sum(not c["reasons"] for c in group), _hours(sum(c["seconds"] for c in group if not c["reasons"])),
         sum(bool(c["reasons"]) for c in group)) for name, group in sorted(speakers.items())])
    images = [_histogram(clips, name, label, limits.get(name)) for name, label in HISTOGRAMS]
    worst = []
    for name in WORST:
        measured = [c for c in clips if c.get(name) is not None]
        if not measured:
            continue
        measured.sort(key=lambda c: c[name], reverse=not HIGHER_IS_BETTER[name])
        worst.append(f"<h3>{html.escape(name)}: worst {min(WORST_SHOWN, len(measured))}</h3>" + "".join(
            _player(c, f"{name} {c[name]:.3g}") for c in measured[:WORST_SHOWN]))
    no_speech = "".join(_player({**s, "reasons": [s["reason"]], "text": ""},
                                f"{s['start']:.1f}-{s['end']:.1f} s") for s in stretches)
    bad_list = "".join(f"<li>{html.escape(b['detail'])}</li>" for b in bad) or "<li>none</li>"
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>data report: {html.escape(folder.name)}"
            f"</title><style>{STYLE}</style></head><body><h1>Data report</h1><p id='problems'></p>"
            f"<p>{html.escape(report['source'])}: {report.get('recordings', '')} recordings, "
            f"{_hours(report['recorded_seconds'])} recorded</p>{summary}<h2>Rejected, by reason</h2>{reasons}"
            f"<h2>Per speaker</h2>{per_speaker}<h2>Scores</h2>{''.join(i for i in images if i)}"
            f"<h2>Worst clips of each kind</h2>{''.join(worst)}<h2>Stretches without speech</h2>"
            f"{no_speech or '<p>none</p>'}<h2>Bad inputs</h2><ul>{bad_list}</ul>{CHECK}</body></html>")
    return atomic.write_text(folder / "report.html", page)
