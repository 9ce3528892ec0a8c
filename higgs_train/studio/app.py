"""The studio's gradio app: five pages (Data, Train, Compare, Speak, Export) over one root folder and one job
queue. Each page only builds commands (commands.py), runs them as jobs (jobs.py) and reads what they write."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from higgs_train.studio import page_compare, page_data, page_export, page_speak, page_train
from higgs_train.studio.context import Studio

PAGES = {"Data": page_data, "Train": page_train, "Compare": page_compare, "Speak": page_speak, "Export": page_export}


def build_app(root: str | Path) -> tuple[gr.Blocks, Studio]:
    studio = Studio.open(root)
    with gr.Blocks(title="higgs-studio") as app:
        gr.Markdown(f"# higgs-studio\nEvery action is a command, shown beside it: copy it to run the same on a "
                    f"cluster. Root folder: `{studio.root.folder}`; jobs run one per device, and go on when this "
                    "page or the studio closes.")
        with gr.Tabs():
            for title, page in PAGES.items():
                with gr.Tab(title, id=title.lower()):
                    page.build(studio)
    studio.jobs.start_watching()
    return app, studio
