"""Data page: run `higgs-prep ingest` or `convert` on a folder in the root, with live progress; browse the result
(listen, correct a transcript, reject or restore a clip, sorted by any score); corrections go to the dataset's
`overrides.jsonl`, which every read of its rows applies; the audio is never deleted. Shows ingest's report.html."""

from __future__ import annotations

import html
from pathlib import Path

import gradio as gr

from higgs_train.data.overrides import append_override
from higgs_train.runtime.errors import UserError
from higgs_train.studio import commands
from higgs_train.studio.clips import dataset_clips, score_names
from higgs_train.studio.context import Studio, refused
from higgs_train.studio.jobs import device_of

ACTIONS = ["ingest", *(f"convert {name}" for name in ("audiofolder", "ljspeech", "libritts", "hf", "jsonl"))]
TABLE_COLUMNS = ["id", "speaker", "rejected", "corrected", "text"]


def _table(clips: list[dict], sort_by: str | None) -> list[list]:
    scores = score_names(clips)
    if sort_by in scores:
        clips = sorted(clips, key=lambda c: (c.get(sort_by) is None, c.get(sort_by)))
    return [[c[k] for k in TABLE_COLUMNS] + [c.get(s) for s in scores] for c in clips]


def build(studio: Studio) -> None:
    job_id = gr.State(None)
    gr.Markdown("Point to a folder of raw recordings (ingest) or of clips with their transcripts (convert); paths are "
                "relative to the studio's root.")
    with gr.Row():
        source = gr.Textbox(label="input folder (or .jsonl)", scale=3)
        action = gr.Dropdown(ACTIONS, value="convert audiofolder", label="action", elem_id="data-action")
        output = gr.Textbox(label="dataset folder to write", value="data/ready", scale=2)
        asr = gr.Textbox(label="ASR (ingest)", info="a Whisper folder, or pocketsphinx; empty: ingest's default")
    run = gr.Button("Run", variant="primary")
    notice = gr.Markdown(elem_id="data-notice")
    shown = gr.Textbox(label="command", interactive=False, elem_id="data-command")
    progress = gr.Textbox(label="progress", lines=6, interactive=False, autoscroll=True, elem_id="data-log")

    gr.Markdown("### Clips")
    with gr.Row():
        dataset = gr.Textbox(label="dataset folder", value="data/ready", scale=3)
        sort_by = gr.Dropdown([], label="sort by score", allow_custom_value=True)
        open_button = gr.Button("Open")
    table = gr.Dataframe(headers=TABLE_COLUMNS, interactive=False, wrap=True, max_height=320)
    with gr.Row():
        clip_id = gr.Dropdown([], label="clip", allow_custom_value=True, elem_id="data-clip")
        player = gr.Audio(label="clip", type="filepath", interactive=False)
    transcript = gr.Textbox(label="transcript", lines=2)
    with gr.Row():
        save = gr.Button("Save transcript")
        reject = gr.Button("Reject")
        restore = gr.Button("Restore")
    said = gr.Markdown(elem_id="data-said")
    report = gr.HTML()

    def start(source_text, action_name, output_text, asr_text):
        try:
            source_path, output_path = studio.root.inside(source_text), studio.root.inside(output_text)
        except UserError as error:
            return gr.update(), gr.update(), gr.update(), refused(error)
        given, out = studio.root.shown(source_path), studio.root.shown(output_path)
        command = (commands.ingest(given, out, asr_text.strip() or None) if action_name == "ingest" else
                   commands.convert(action_name.split()[1], given, out))
        job = studio.jobs.submit("data", command, device_of(None if action_name == "ingest" else "cpu"),
                                 target=str(output_path))
        return job.id, *studio.job_view(job.id), ""

    run.click(start, [source, action, output, asr], [job_id, shown, progress, notice])

    def watch(current):
        current = current or getattr(studio.latest_job("data"), "id", None)
        return current, *studio.job_view(current)

    gr.Timer(1.0).tick(watch, job_id, [job_id, shown, progress])

    def load(folder_text, sort):
        try:
            folder = studio.root.inside(folder_text)
            clips = dataset_clips(folder)
        except (UserError, OSError) as error:
            return gr.update(), gr.update(), gr.update(), refused(error), ""
        frame = {"headers": TABLE_COLUMNS + score_names(clips), "data": _table(clips, sort)}
        report_file = folder / "report.html"
        page = (f'<iframe src="/gradio_api/file={html.escape(str(report_file))}" style="width:100%;height:600px;'
                'border:1px solid #ccc"></iframe>' if report_file.is_file() else "")
        return (frame, gr.update(choices=score_names(clips)), gr.update(choices=[c["id"] for c in clips]),
                f"{len(clips)} clips, {sum(c['rejected'] for c in clips)} rejected by you", page)

    open_button.click(load, [dataset, sort_by], [table, sort_by, clip_id, said, report])
    sort_by.change(load, [dataset, sort_by], [table, sort_by, clip_id, said, report])

    def show(folder_text, chosen):
        try:
            clip = next(c for c in dataset_clips(studio.root.inside(folder_text)) if c["id"] == chosen)
            audio = studio.root.inside(clip["audio"]) if clip["audio"] else None
        except StopIteration:
            return None, "", f"refused: {chosen!r} is not a clip of {folder_text}"
        except (UserError, OSError) as error:
            return None, "", refused(error)
        return (str(audio) if audio else None, clip["text"],
                f"`{clip['id']}` ({'rejected' if clip['rejected'] else 'kept'})")

    clip_id.change(show, [dataset, clip_id], [player, transcript, said])

    def correct(folder_text, chosen, sort, **change):
        if change.get("text") == "":
            return gr.update(), "refused: an empty transcript; write what the clip says, or reject the clip"
        try:
            folder = studio.root.inside(folder_text)
            root = folder.parent if folder.is_file() else folder
            append_override(root, chosen, **change)
        except (UserError, OSError) as error:
            return gr.update(), refused(error)
        what = ", ".join(f"{k}={v!r}" for k, v in change.items())
        return load(folder_text, sort)[0], f"`{chosen}`: {what}, in {Path(root, 'overrides.jsonl')}"

    save.click(lambda f, c, s, t: correct(f, c, s, text=t.strip()), [dataset, clip_id, sort_by, transcript],
               [table, said])
    reject.click(lambda f, c, s: correct(f, c, s, rejected=True), [dataset, clip_id, sort_by], [table, said])
    restore.click(lambda f, c, s: correct(f, c, s, rejected=False), [dataset, clip_id, sort_by], [table, said])
