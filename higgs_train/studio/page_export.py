"""Export page: a run's adapter, a merged checkpoint or Boson's layout, through `higgs-export`, with the command
shown."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from higgs_train.runtime.errors import UserError
from higgs_train.studio import commands, runs
from higgs_train.studio.context import Studio, refused
from higgs_train.studio.jobs import device_of

CHECKPOINTS = {"final weights": None, "best evaluation": "best", "newest checkpoint": "latest"}


def build(studio: Studio) -> None:
    job_id = gr.State(None)
    with gr.Row():
        run = gr.Dropdown([], label="run", allow_custom_value=True, elem_id="export-run")
        kind = gr.Radio(list(commands.EXPORT_KINDS), value="adapter", label="export",
                        info="adapter: PEFT folder; merged: a full checkpoint; boson: Boson's serving layout")
        checkpoint = gr.Radio(list(CHECKPOINTS), value="final weights", label="weights")
    go = gr.Button("Export", variant="primary")
    notice = gr.Markdown(elem_id="export-notice")
    shown = gr.Textbox(label="command", interactive=False, elem_id="export-command")
    log = gr.Textbox(label="job", lines=6, interactive=False, autoscroll=True, elem_id="export-log")

    def start(chosen, kind_name, weights):
        try:
            run_dir = studio.root.inside(Path("runs") / (chosen or ""))
        except UserError as error:
            return gr.update(), gr.update(), gr.update(), refused(error)
        if not runs.is_run(run_dir):
            return gr.update(), gr.update(), gr.update(), f"refused: {chosen!r} is not a run under runs/"
        command = commands.export(studio.root.shown(run_dir), kind_name, CHECKPOINTS[weights])
        job = studio.jobs.submit("export", command, device_of("cpu"), target=str(run_dir / "export" / kind_name))
        return job.id, *studio.job_view(job.id), ""

    go.click(start, [run, kind, checkpoint], [job_id, shown, log, notice])

    def watch(current, chosen):
        current = current or getattr(studio.latest_job("export"), "id", None)
        names = [p.name for p in runs.list_runs(studio.runs)]
        return current, *studio.job_view(current), gr.update(choices=names, value=chosen)

    gr.Timer(1.0).tick(watch, [job_id, run], [job_id, shown, log, run])
