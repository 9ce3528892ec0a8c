"""Train page: a recipe (shipped, or the user's own in a config folder), a model, the data and the most-used
settings as form fields; a dry run (memory plan and a rendered example), start, stop (SIGTERM: a checkpoint is
saved) and resume (the same command: `resume=auto` goes on from the newest checkpoint); live loss and eval curves,
and each evaluation's samples beside the clip they should match. Everything shown is read from the run folders."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import pandas as pd
import yaml

from higgs_train.config.files import compose_config, recipe_names
from higgs_train.config.generation import EvalConfig
from higgs_train.config.groups import OptimConfig, PeftConfig, TrainerConfig
from higgs_train.runtime.errors import UserError
from higgs_train.studio import commands, form_fields, runs
from higgs_train.studio.context import Studio, refused
from higgs_train.studio.jobs import device_of

# The settings the form shows: config groups (a choice of file) and keys. Each key's type, help and allowed values
# come from its group's config dataclass, its value from the composed config of the chosen recipe.
GROUP_CONFIGS = {"trainer": TrainerConfig, "optim": OptimConfig, "peft": PeftConfig, "eval": EvalConfig}
TRAIN_GROUPS = ("task", "peft")
TRAIN_FIELDS = [("trainer", "max_steps"), ("trainer", "batch_size"), ("optim", "lr"), ("optim", "scheduler"),
                ("peft", "r"), ("trainer", "precision"), ("trainer", "device"), ("trainer", "save_every_n_steps"),
                ("eval", "every_n_steps"), ("eval", "num_samples"), ("eval", "max_new_tokens")]
DEFAULT_RECIPE = "smoke"
PLOT_SECONDS = 3.0
USER_CONFIGS = "my_configs"  # the folder of the user's own recipes (Hydra's --config-dir): my_configs/recipe/*.yaml


def _group_choices(group: str) -> list[str]:
    from higgs_train.config.files import CONFIG_DIR

    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def _user_recipes(studio: Studio) -> list[str]:
    return sorted(p.stem for p in (studio.root.folder / USER_CONFIGS / "recipe").glob("*.yaml"))


def _composed(studio: Studio, recipe: str | None) -> tuple[dict, dict]:
    """(the recipe's value of each key of TRAIN_FIELDS, its choice of each group of TRAIN_GROUPS)."""
    overrides = [f"recipe={recipe}"] if recipe else []
    if recipe in _user_recipes(studio):
        overrides.append(f"hydra.searchpath=[file://{studio.root.folder / USER_CONFIGS}]")
    cfg = compose_config(overrides, return_hydra_config=True)
    values = {f"{group}.{key}": cfg[group].get(key) for group, key in TRAIN_FIELDS}
    return values, {group: cfg.hydra.runtime.choices[group] for group in TRAIN_GROUPS}


def _changed(annotation, raw, default) -> bool:
    value = form_fields.typed_value(annotation, raw)
    if isinstance(value, (int, float)) and isinstance(default, (int, float)):
        return float(value) != float(default)
    return value is not None and str(value) != str(default)


def resume_command(studio: Studio, run_dir: Path) -> commands.Command:
    """The command that made the run (the studio's record of it, else the run's own `.hydra/overrides.yaml`)."""
    for job in reversed(studio.jobs.all()):
        if job.kind == "train" and job.target == str(run_dir):
            return commands.Command("higgs-train", tuple(job.argv[3:]))
    overrides = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text()) or []
    return commands.train_again(overrides, studio.root.shown(run_dir))


def _curves(run_dir: Path | None):
    """The curves as typed frames, or no update while a curve has no point yet: the chart takes its axes' types and
    its series from the first data it gets, so an empty first frame leaves it with category axes and no lines."""
    loss = pd.DataFrame(runs.loss_curve(run_dir) if run_dir else [], columns=["step", "loss", "curve"])
    evals = pd.DataFrame(runs.eval_curve(run_dir) if run_dir else [], columns=["step", "value", "curve"])
    return (loss.astype({"step": int, "loss": float}) if len(loss) else gr.update(),
            evals.astype({"step": int, "value": float}) if len(evals) else gr.update())


def _sample_label(sample: dict) -> str:
    return f"step {sample['step']} · {sample['id']}"


def build(studio: Studio) -> None:
    specs = {f"{group}.{key}": form_fields.field_spec(GROUP_CONFIGS[group], key) for group, key in TRAIN_FIELDS}
    base_values, base_groups = _composed(studio, DEFAULT_RECIPE)
    gr.Markdown("Pick a recipe, a model and the data; the form holds the most-used settings (only what you change "
                "goes on the command line). Runs are written under `runs/`.")
    with gr.Row():
        recipe = gr.Dropdown(recipe_names() + _user_recipes(studio), value=DEFAULT_RECIPE, label="recipe",
                             info=f"shipped recipes, and yours in {USER_CONFIGS}/recipe/*.yaml")
        model = gr.Textbox(label="model", placeholder="the recipe's (e.g. builtin:tiny, a folder, org/name)")
        data = gr.Textbox(label="data", placeholder="the recipe's (e.g. builtin:demo/train.jsonl, a dataset folder)")
        name = gr.Textbox(label="run name", placeholder="new: RECIPE-DATE-TIME under runs/")
    with gr.Row():
        groups = {g: gr.Dropdown(_group_choices(g), value=base_groups[g], label=g) for g in TRAIN_GROUPS}
    fields = {}
    with gr.Row():
        for key, value in base_values.items():
            fields[key] = form_fields.component(key, specs[key], value)
    with gr.Row():
        dry = gr.Button("Dry run")
        start = gr.Button("Start", variant="primary")
        stop = gr.Button("Stop", variant="stop")
        resume = gr.Button("Resume")
    notice = gr.Markdown(elem_id="train-notice")
    shown = gr.Textbox(label="command", interactive=False, elem_id="train-command")
    log = gr.Textbox(label="job", lines=8, interactive=False, autoscroll=True, elem_id="train-log")

    gr.Markdown("### Runs")
    with gr.Row():
        run = gr.Dropdown([], label="run", allow_custom_value=True, scale=3, elem_id="train-run")
        state = gr.Markdown(elem_id="train-state")
    with gr.Row():
        loss_plot = gr.LinePlot(x="step", y="loss", color="curve", title="training loss", height=260)
        eval_plot = gr.LinePlot(x="step", y="value", color="curve", title="evaluations", height=260)
    sample = gr.Dropdown([], label="samples (newest first)", allow_custom_value=True, elem_id="train-samples")
    with gr.Row():
        sample_player = gr.Audio(label="sample", type="filepath", interactive=False, elem_id="train-sample")
        target_player = gr.Audio(label="the clip it should match", type="filepath", interactive=False,
                                 elem_id="train-target")
    job_id = gr.State(None)
    inputs = [recipe, model, data, name, *groups.values(), *fields.values()]

    def recipe_defaults(chosen):
        values, choices = _composed(studio, chosen)
        return [gr.update(value=choices[g]) for g in TRAIN_GROUPS] + [gr.update(value=values[k]) for k in fields]

    recipe.change(recipe_defaults, recipe, [*groups.values(), *fields.values()])

    def command_of(chosen, model_text, data_text, run_name, *values, dry_run=False):
        recipe_values, recipe_groups = _composed(studio, chosen)
        settings = {g: v for g, v in zip(TRAIN_GROUPS, values) if v != recipe_groups[g]}
        if model_text.strip():
            settings["model.name_or_path"] = studio.model_value(model_text)
        if data_text.strip():
            settings["data.path"] = studio.data_value(data_text)
        for key, raw in zip(fields, values[len(TRAIN_GROUPS):]):
            if _changed(specs[key].annotation, raw, recipe_values[key]):
                settings[key] = form_fields.typed_value(specs[key].annotation, raw)
        run_dir = studio.root.inside(Path("runs") / (run_name.strip() or studio.new_name(chosen)))
        config_dir = USER_CONFIGS if chosen in _user_recipes(studio) else None
        return commands.train(chosen, studio.root.shown(run_dir), settings, config_dir, dry_run), run_dir, settings

    def submit(*values, dry_run=False):
        try:
            command, run_dir, settings = command_of(*values, dry_run=dry_run)
        except UserError as error:
            return gr.update(), gr.update(), gr.update(), gr.update(), refused(error)
        if not dry_run and studio.jobs.running_for(str(run_dir)):
            return (gr.update(), gr.update(), gr.update(), gr.update(),
                    f"refused: {run_dir.name} already has a job queued or running")
        job = studio.jobs.submit("dry-run" if dry_run else "train", command,
                                 device_of(str(settings.get("trainer.device", ""))), target=str(run_dir))
        picked = gr.update() if dry_run else gr.update(choices=_run_names(), value=run_dir.name)
        return job.id, *studio.job_view(job.id), picked, ""

    def _run_names():
        return [p.name for p in runs.list_runs(studio.runs)]

    dry.click(lambda *v: submit(*v, dry_run=True), inputs, [job_id, shown, log, run, notice])
    start.click(submit, inputs, [job_id, shown, log, run, notice])

    def stop_run(chosen):
        job = studio.jobs.running_for(str(studio.runs / chosen)) if chosen else None
        if job is None:
            return gr.update(), f"refused: no job of this studio is running {chosen or 'a run'}"
        return job.id, studio.jobs.stop(job.id)

    stop.click(stop_run, run, [job_id, notice])

    def resume_run(chosen):
        if not chosen:
            return gr.update(), gr.update(), "refused: pick the run to resume"
        try:
            run_dir = studio.root.inside(Path("runs") / chosen)
            if studio.jobs.running_for(str(run_dir)):
                return gr.update(), gr.update(), f"refused: {chosen} is already running or queued"
            command = resume_command(studio, run_dir)
        except (UserError, OSError) as error:
            return gr.update(), gr.update(), refused(error)
        job = studio.jobs.submit("train", command, device_of(None), target=str(run_dir))
        return job.id, command.shown(), f"resuming {chosen}"

    resume.click(resume_run, run, [job_id, shown, notice])

    def watch(current, chosen, picked):
        current = current or getattr(studio.latest_job("train"), "id", None)
        names = _run_names()
        chosen = chosen if chosen in names else (names[0] if names else None)
        run_dir = studio.runs / chosen if chosen else None
        found = runs.samples(run_dir) if run_dir else []
        labels = [_sample_label(s) for s in found]
        logged = runs.read_jsonl(run_dir / "metrics.jsonl") if run_dir else []
        step = max((row.get("step", 0) for row in logged), default=0)
        status = f"**{chosen}**: {_state(run_dir)} · step {step} · {len(found)} samples" if run_dir else "no run yet"
        return (current, *studio.job_view(current), gr.update(choices=names, value=chosen), status,
                gr.update(choices=labels, value=picked if picked in labels else None))

    def _state(run_dir: Path) -> str:
        """The run's state, and while this studio's job for it starts or stops, that."""
        active = studio.jobs.running_for(str(run_dir))
        if active is not None and studio.jobs.stop_requested(active):
            return "stopping (saving a checkpoint)"
        if active is not None and not runs.is_running(run_dir):
            return "starting"
        return runs.state(run_dir)

    watched = [job_id, shown, log, run, state, sample]
    gr.Timer(1.0).tick(watch, [job_id, run, sample], watched)
    # The curves redraw every few seconds: enough to watch a run, and less work for a machine that trains.
    gr.Timer(PLOT_SECONDS).tick(lambda chosen: _curves(studio.runs / chosen if chosen else None), run,
                                [loss_plot, eval_plot])
    run.change(lambda chosen: _curves(studio.runs / chosen if chosen else None), run, [loss_plot, eval_plot])

    def play(chosen, picked):
        if not chosen or not picked:
            return None, None
        for found in runs.samples(studio.runs / chosen):
            if _sample_label(found) == picked:
                return str(found["path"]), str(found["target"]) if found["target"] else None
        return None, None

    sample.input(play, [run, sample], [sample_player, target_player])
