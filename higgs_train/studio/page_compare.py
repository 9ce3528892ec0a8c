"""Compare page: the base and one or more runs' adapters or merged exports on a test list, through `higgs-eval`;
the A/B table (difference, 95% interval, verdict per metric) beside players for one utterance from each model."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import gradio as gr

from higgs_train.runtime.errors import UserError
from higgs_train.studio import commands, runs
from higgs_train.studio.context import Studio, refused
from higgs_train.studio.jobs import device_of

MAX_PLAYERS = 4
TABLE = ["variant", "against", "metric", "n", "difference", "low", "high", "verdict"]


def candidates(studio: Studio) -> list[str]:
    """Each run's adapters (final, best, exported) and merged exports, as paths relative to the root."""
    found = []
    for run_dir in runs.list_runs(studio.runs):
        found += [studio.root.shown(p) for p in runs.adapters(run_dir)]
        found += [studio.root.shown(p) for p in (run_dir / "export").glob("*") if (p / "config.json").is_file()]
    return found


def ab_table(out: Path) -> list[list]:
    summary = json.loads((out / "summary.json").read_text())
    rows = []
    for comparison in summary["comparisons"]:
        for metric, row in comparison["metrics"].items():
            interval = [round(row[k], 4) if k in row else None for k in ("low", "high")]
            rows.append([comparison["variant"], comparison["against"], metric, row["n"], round(row["difference"], 4),
                         *interval, row["verdict"]])
    return rows


def utterances(out: Path) -> dict[str, list[tuple[str, str]]]:
    """Utterance id -> (variant, its wav) for every variant, from utterances.csv."""
    found: dict[str, list[tuple[str, str]]] = {}
    with open(out / "utterances.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            found.setdefault(row["id"], []).append((row["variant"], row["path"]))
    return found


def build(studio: Studio) -> None:
    job_id = gr.State(None)
    out_dir = gr.State(None)
    with gr.Row():
        base = gr.Textbox(label="base model", value="builtin:tiny", info="builtin:tiny, a folder, or a hub id")
        test_list = gr.Textbox(label="test list", value="builtin:demo-eval",
                               info="builtin:demo-eval, a Seed-TTS meta.lst or a prompts JSONL in the root")
        limit = gr.Number(label="utterances (0: all)", value=10, precision=0,
                          info="a verdict needs 10 or more")
        max_new_tokens = gr.Number(label="max_new_tokens", value=200, precision=0)
    variants = gr.CheckboxGroup([], label="runs and exports to compare with the base", elem_id="compare-variants")
    others = gr.Textbox(label="other models", placeholder="folders or hub ids, comma-separated (merged checkpoints)")
    run = gr.Button("Compare", variant="primary")
    notice = gr.Markdown(elem_id="compare-notice")
    shown = gr.Textbox(label="command", interactive=False, elem_id="compare-command")
    log = gr.Textbox(label="job", lines=6, interactive=False, autoscroll=True, elem_id="compare-log")
    table = gr.Dataframe(headers=TABLE, interactive=False, wrap=True, label="A/B: each variant against the base",
                         elem_id="compare-table")
    utterance = gr.Dropdown([], label="utterance", allow_custom_value=True, elem_id="compare-utterance")
    with gr.Row(elem_id="compare-players"):
        players = [gr.Audio(label=f"variant {i}", type="filepath", interactive=False, visible=i == 0)
                   for i in range(MAX_PLAYERS)]

    def start(base_text, list_text, limit_value, tokens, picked, other_text):
        try:
            models = [studio.model_value(base_text)] + [studio.model_value(m) for m in other_text.split(",")
                                                       if m.strip()]
            chosen = [studio.root.shown(studio.root.inside(p)) for p in picked or []]
            listed = studio.data_value(list_text)
        except UserError as error:
            return gr.update(), gr.update(), gr.update(), gr.update(), refused(error)
        adapters = [p for p in chosen if (studio.root.folder / p / "adapter_config.json").is_file()]
        models += [p for p in chosen if p not in adapters]
        if len(models) + len(adapters) < 2:
            return (gr.update(), gr.update(), gr.update(), gr.update(),
                    "refused: pick at least one run or model to compare with the base")
        out = studio.root.inside(Path("evals") / studio.new_name("ab"))
        settings = {"limit": int(limit_value or 0) or None, "max_new_tokens": int(tokens) if tokens else None}
        command = commands.evaluate(models, adapters, listed, studio.root.shown(out), settings)
        job = studio.jobs.submit("eval", command, device_of(None), target=str(out))
        return job.id, str(out), *studio.job_view(job.id), ""

    run.click(start, [base, test_list, limit, max_new_tokens, variants, others],
               [job_id, out_dir, shown, log, notice])

    def watch(current, out, picked):
        current = current or getattr(studio.latest_job("eval"), "id", None)
        if current and not out:
            out = studio.jobs.get(current).target
        finished = bool(out) and (Path(out) / "summary.json").is_file()
        ids = list(utterances(Path(out))) if finished else []
        return (current, out, *studio.job_view(current), gr.update(choices=candidates(studio), value=picked),
                ab_table(Path(out)) if finished else gr.update(),
                gr.update(choices=ids) if ids else gr.update())

    gr.Timer(1.0).tick(watch, [job_id, out_dir, variants], [job_id, out_dir, shown, log, variants, table, utterance])

    def listen(out, chosen):
        heard = utterances(Path(out)).get(chosen, []) if out and chosen else []
        return [gr.update(value=str(studio.root.inside(heard[i][1])), label=heard[i][0], visible=True)
                if i < len(heard) else gr.update(value=None, visible=False) for i in range(MAX_PLAYERS)]

    utterance.input(listen, [out_dir, utterance], players)
