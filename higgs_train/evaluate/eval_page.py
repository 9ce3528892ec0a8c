"""`report.html` of a `higgs-eval` run: each variant's summary per metric (what was not measured, and why), the A/B
table with each difference's 95% interval and verdict, which checkpoint and adapter each variant is, every utterance
with its target (or prompt) clip and a player per variant, and the settings as a table. Self-contained:
the audio is the run's own wav files, relative to the page; the page marks any clip it cannot play."""

from __future__ import annotations

import html
import shutil
from pathlib import Path

from higgs_train.evaluate.metrics import METRICS, direction, in_words
from higgs_train.evaluate.report import CHECK, STYLE


def _number(value) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else ""


def _arrow(key: str) -> str:
    try:
        better = direction(key)
    except KeyError:
        return ""
    return {True: " (higher is better)", False: " (lower is better)", None: ""}[better]


def _summary_table(summary: dict) -> str:
    keys = [m.summary for m in METRICS.values()] + [f"{m.name}_corpus" for m in METRICS.values() if m.corpus]
    head = "".join(f"<th>{html.escape(v['name'])}</th>" for v in summary["variants"])
    rows = []
    for key in keys:
        metric = next((m for m in METRICS.values() if key in (m.summary, f"{m.name}_corpus")), None)
        reason = summary["not_measured"].get(metric.name) if metric else None
        cells = "".join(f"<td>{_number(v['summary'][key])}</td>" if key in v["summary"] else
                        f"<td class='missing'>{html.escape(reason or 'no sample has it')}</td>"
                        for v in summary["variants"])
        rows.append(f"<tr><th>{html.escape(key)}{_arrow(key)}</th>{cells}</tr>")
    return f"<table><tr><th>metric</th>{head}</tr>{''.join(rows)}</table>"


def _comparison_table(comparison: dict) -> str:
    rows = []
    for key, row in comparison["metrics"].items():
        interval = f"[{row['low']:.4g}, {row['high']:.4g}]" if "low" in row else ""
        rows.append(f"<tr><th>{html.escape(key)}</th><td>{_number(row['difference'])}</td><td>{interval}</td>"
                    f"<td>{row['n']}</td><td class='verdict'>{html.escape(row['verdict'])}</td></tr>")
    return (f"<h3>{html.escape(comparison['variant'])} against {html.escape(comparison['against'])}</h3>"
            "<table><tr><th>metric</th><th>difference (variant - baseline)</th><th>95% interval (paired sign-flip test)"
            f"</th><th>utterances</th><th>verdict</th></tr>{''.join(rows)}</table>")


def _facts(record: dict) -> str:
    said = ["stopped" if record["stopped"] else "ran to the token limit", f"{record['frames']} frames",
            *in_words(record)]
    if record.get("transcript") is not None:
        said.append(f"heard: {record['transcript']!r}")
    if record.get("wer_error"):
        said.append(f"WER not scored: {record['wer_error']}")
    return html.escape(", ".join(said))


def _prompt_clip(folder: Path, record: dict) -> str:
    """A player for the utterance's target (or prompt reference) clip, copied beside the page once."""
    source = record.get("target_audio")
    if not source or not Path(source).is_file():
        return ""
    copy = Path("prompts") / f"{Path(record['path']).stem}{Path(source).suffix}"
    (folder / "prompts").mkdir(exist_ok=True)
    shutil.copyfile(source, folder / copy)
    return f"<br><audio controls preload='metadata' src='{html.escape(copy.as_posix())}'></audio>"


def _utterances(folder: Path, variants: list[dict]) -> str:
    rows = []
    for index, first in enumerate(variants[0]["records"]):
        cells = []
        for variant in variants:
            record = variant["records"][index]
            clip = Path(variant["name"]) / Path(record["path"]).name  # beside the page
            cells.append(f"<td><audio controls preload='metadata' src='{html.escape(clip.as_posix())}'></audio>"
                         f"<br><small>{_facts(record)}</small></td>")
        rows.append(f"<tr><th>{html.escape(str(first['id']))}<br><small>{html.escape(first['text'])}</small>"
                    f"{_prompt_clip(folder, first)}</th>{''.join(cells)}</tr>")
    head = "".join(f"<th>{html.escape(v['name'])}</th>" for v in variants)
    return (f"<table class='utterances'><tr><th>utterance (text; its target or prompt clip)</th>{head}</tr>"
            f"{''.join(rows)}</table>")


def _variants_table(summary: dict) -> str:
    """Which checkpoint (and adapter) each variant is."""
    rows = "".join(f"<tr><th>{html.escape(v['name'])}</th><td class='text'>{html.escape(str(v['model']))}</td>"
                   f"<td class='text'>{html.escape(str(v.get('adapter') or 'none'))}</td></tr>"
                   for v in summary["variants"])
    return f"<table><tr><th>variant</th><th>model</th><th>adapter</th></tr>{rows}</table>"


def _settings_table(settings: dict) -> str:
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td class='text'>{html.escape(str(v))}</td></tr>"
                   for k, v in settings.items())
    return f"<table>{rows}</table>"


def write_eval_page(folder: Path, summary: dict, variants: list[dict]) -> Path:
    judges = ", ".join(f"{k}: {v}" for k, v in summary["judges"].items()) or "none (no ASR or speaker model given)"
    comparisons = "".join(_comparison_table(c) for c in summary["comparisons"]) or \
        "<p>one variant: nothing to compare (give several adapters or models for an A/B)</p>"
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>higgs-eval: {html.escape(summary['list'])}"
            f"</title><style>{STYLE}</style></head><body><h1>higgs-eval on {html.escape(summary['list'])}</h1>"
            f"<p id='problems'></p><p>{summary['utterances']} utterances; judges: {html.escape(judges)}</p>"
            f"<h2>Variants</h2>{_variants_table(summary)}<h2>Summary</h2>{_summary_table(summary)}"
            f"<h2>A/B</h2>{comparisons}<h2>Utterances</h2>{_utterances(Path(folder), variants)}"
            f"<h2>Settings</h2>{_settings_table(summary['settings'])}{CHECK}</body></html>")
    path = Path(folder) / "report.html"
    path.write_text(page)
    return path
