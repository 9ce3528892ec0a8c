"""Speak page: text, an optional reference clip and an adapter give a wav through `higgs-generate`, in each of the
four workflows (which arguments each one takes is higgs-generate's: see its --help)."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from higgs_train.runtime.errors import UserError
from higgs_train.studio import commands
from higgs_train.studio.context import Studio, refused
from higgs_train.studio.jobs import device_of
from higgs_train.studio.page_compare import candidates

WORKFLOWS = {
    "smart_voice": "text, and a scene describing the recording (and a speaker description)",
    "voice_clone": "text in the voice of a reference clip, with what that clip says",
    "multi_speaker": "[SPEAKER0] ... [SPEAKER1] ... text, one description per speaker separated by |",
    "multi_speaker_clone": "[SPEAKERn] text, one reference clip per speaker (comma-separated paths)",
}


def build(studio: Studio) -> None:
    job_id = gr.State(None)
    with gr.Row():
        workflow = gr.Radio(list(WORKFLOWS), value="smart_voice", label="workflow", info=WORKFLOWS["smart_voice"])
        model = gr.Textbox(label="model", value="builtin:tiny")
        adapter = gr.Dropdown([], label="adapter (optional)", allow_custom_value=True)
    text = gr.Textbox(label="text", lines=2, value="Hello there.")
    with gr.Row():
        scene = gr.Textbox(label="scene", placeholder="e.g. Audio is recorded from a quiet room.")
        speakers = gr.Textbox(label="speakers", placeholder="feminine, calm|masculine, deep")
    with gr.Row():
        upload = gr.Audio(label="reference clip (upload)", type="filepath", sources=["upload"])
        reference = gr.Textbox(label="or reference clip paths in the root", placeholder="voices/anna_001.wav")
        reference_text = gr.Textbox(label="what the reference clip says")
    max_new_tokens = gr.Number(label="max_new_tokens", value=200, precision=0)
    run = gr.Button("Speak", variant="primary")
    notice = gr.Markdown(elem_id="speak-notice")
    shown = gr.Textbox(label="command", interactive=False)
    log = gr.Textbox(label="job", lines=5, interactive=False, autoscroll=True)
    result = gr.Audio(label="result", type="filepath", interactive=False)

    workflow.change(lambda w: gr.update(info=WORKFLOWS[w]), workflow, workflow)

    def start(kind, model_text, adapter_text, words, scene_text, speaker_text, uploaded, paths, said, tokens):
        try:
            clips = [studio.root.shown(studio.root.inside(p)) for p in paths.split(",") if p.strip()]
            if uploaded:
                clips.insert(0, str(studio.root.inside(uploaded)))
            chosen_model = studio.model_value(model_text)
            chosen_adapter = studio.root.shown(studio.root.inside(adapter_text)) if adapter_text else None
        except UserError as error:
            return gr.update(), gr.update(), gr.update(), refused(error)
        cloning = kind in ("voice_clone", "multi_speaker_clone")
        if cloning and not clips:
            return (gr.update(), gr.update(), gr.update(),
                    f"refused: {kind} needs a reference clip (upload one or give its path)")
        name = studio.new_name(kind)
        folder = studio.root.inside(Path("speak"))
        out = folder / f"{name}.wav"  # higgs-generate writes OUT/ID.wav
        command = commands.generate(
            chosen_model, words, studio.root.shown(folder), name, adapter=chosen_adapter,
            scene=scene_text if kind == "smart_voice" else None,
            speakers=speaker_text if kind in ("smart_voice", "multi_speaker") else None,
            reference_audio=clips if cloning else None, reference_text=said if kind == "voice_clone" else None,
            settings={"max_new_tokens": int(tokens) if tokens else None})
        job = studio.jobs.submit("speak", command, device_of(None), target=str(out))
        return job.id, *studio.job_view(job.id), ""

    run.click(start, [workflow, model, adapter, text, scene, speakers, upload, reference, reference_text,
                      max_new_tokens], [job_id, shown, log, notice])

    def watch(current, picked):
        current = current or getattr(studio.latest_job("speak"), "id", None)
        choices = [c for c in candidates(studio) if (studio.root.folder / c / "adapter_config.json").is_file()]
        return current, *studio.job_view(current), gr.update(choices=choices, value=picked)

    gr.Timer(1.0).tick(watch, [job_id, adapter], [job_id, shown, log, adapter])

    def finished(current):
        job = studio.jobs.get(current) if current else None
        done = job is not None and studio.jobs.status(job) == "done" and Path(job.target).is_file()
        return job.target if done else None

    log.change(finished, job_id, result)
