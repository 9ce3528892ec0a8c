"""`report.html` in the run directory, rewritten after each evaluation, for runs without a tracker (clusters with no
internet, where wandb is offline): the run's settings, the loss (the mean over codebooks) and per-codebook loss
curves, the periodic evaluation's curves and table, and for each evaluation step each sample with an audio player,
its spectrogram and the clip it should match. Self-contained:
the images are inlined, the audio is the run's own `samples/` (targets copied to `samples/targets/`); no server, no
network. A line at the top of the page says if a clip it plays is missing."""

from __future__ import annotations

import base64
import html
import io
import json
import shutil
from pathlib import Path

import numpy as np
import yaml

from higgs_train.runtime import atomic

STYLE = """body{font-family:sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}td.text,td.missing{text-align:left}
td.missing{color:#777;font-style:italic}.sample{margin:1em 0;padding:.5em;border:1px solid #ddd}
.sample img{display:block;max-width:100%}#problems{color:#b00}"""
# Marks every audio element whose file cannot be played, so a moved or deleted sample shows on the page.
CHECK = """<script>
window.addEventListener("load", () => {
  const audio = [...document.querySelectorAll("audio")];
  const settle = a => new Promise(done => {
    if (a.readyState >= 1 || a.error) return done();
    a.addEventListener("loadedmetadata", done); a.addEventListener("error", done);
  });
  Promise.all(audio.map(settle)).then(() => {
    const missing = audio.filter(a => a.error || a.readyState < 1).map(a => a.getAttribute("src"));
    const images = [...document.querySelectorAll("img")].filter(i => !i.complete || i.naturalWidth === 0).length;
    document.getElementById("problems").textContent = missing.length || images
      ? `cannot play: ${missing.join(", ")}; images that did not render: ${images}` : "";
    document.body.dataset.checked = JSON.stringify({audio: audio.length, missing: missing.length,
                                                    broken_images: images});
  });
});
</script>"""


def _png(figure) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _axes(title: str, ylabel: str):
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    figure, axis = plt.subplots(figsize=(8, 3))
    axis.set_title(title)
    axis.set_xlabel("optimizer step")
    axis.set_ylabel(ylabel)
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.grid(alpha=0.3)
    return figure, axis


def _legend_outside(axis, **kwargs) -> None:
    axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, **kwargs)


# Each objective's training curves in its own words: (title, y label, [(metric, legend label)]); a `reward_` prefix
# stands for every reward term the run logged. Cross-entropy is named only where it is cross-entropy.
OBJECTIVE_CHARTS = {
    "dpo": [("DPO loss: -log sigmoid(beta x reward margin), mean over pairs", "loss per pair", [("loss", "training")]),
            ("DPO rewards (beta x log-ratio to the reference) and preference accuracy", "reward / share",
             [("reward_margin", "reward margin"), ("chosen_reward", "chosen reward"),
              ("rejected_reward", "rejected reward"), ("preference_accuracy", "preference accuracy")]),
            ("Policy log-probabilities of the chosen and rejected clips", "log-prob per pair",
             [("chosen_logp", "chosen"), ("rejected_logp", "rejected")])],
    "grpo": [("GRPO reward: mean over the step's answers", "reward", [("reward", "reward"), ("reward_", "")]),
             ("GRPO: KL to the reference", "nats per token", [("kl", "KL")]),
             ("GRPO surrogate loss (about 0 by construction; the reward is what moves)", "loss per answer",
              [("loss", "training")])],
}


def evaluation_columns() -> list[str]:
    """The evaluation table's columns: the validation loss and accuracy, then the registry's metrics in its order
    (the registry is imported here, not with the page: the model card reads these without loading torch)."""
    from higgs_train.evaluate.metrics import METRICS

    return ["val_loss", "val_accuracy", *(m.summary for m in METRICS.values())]


def _line_chart(metrics: list[dict], title: str, ylabel: str, series: list[tuple[str, str]]):
    keys = [(key, label) for key, label in series if not key.endswith("_")] + [
        (key, key.removeprefix("reward_").replace("_", " ")) for prefix, _ in series if prefix.endswith("_")
        for key in dict.fromkeys(k for m in metrics for k in m if k.startswith(prefix))]
    figure, axis = _axes(title, ylabel)
    for key, label in keys:
        points = [(m["step"], m[key]) for m in metrics if isinstance(m.get(key), (int, float))]
        if points:
            axis.plot(*zip(*points), label=label)
    _legend_outside(axis)
    return figure


def _curves(metrics: list[dict], evaluations: list[dict], objective: str = "sft") -> list[tuple[str, str]]:
    """(alt text, image) of each chart: the objective's own curves (SFT: the loss, with the validation loss, and the
    loss per codebook), the validation cross-entropy, and the periodic evaluation's sample metrics."""
    figures = []
    validated = [e for e in evaluations if "val_loss" in e]
    if objective in OBJECTIVE_CHARTS:
        for title, ylabel, series in OBJECTIVE_CHARTS[objective]:
            figures.append((title, _png(_line_chart(metrics, title, ylabel, series))))
        if validated:
            figure, axis = _axes("Validation: mean cross-entropy over the 8 codebooks, held-out conversations",
                                 "nats per target")
            axis.plot([e["step"] for e in validated], [e["val_loss"] for e in validated], "o-", label="validation")
            _legend_outside(axis)
            figures.append(("validation cross-entropy", _png(figure)))
    else:
        figure, axis = _axes("Audio loss: mean cross-entropy over the 8 codebooks", "nats per target")
        axis.plot([m["step"] for m in metrics], [m["loss"] for m in metrics], label="training")
        if validated:
            axis.plot([e["step"] for e in validated], [e["val_loss"] for e in validated], "o-", label="validation")
        _legend_outside(axis)
        figures.append(("loss curve", _png(figure)))
    per_codebook = [m for m in metrics if m.get("loss_per_codebook")]
    if per_codebook:
        figure, axis = _axes("Training loss per codebook", "nats per target")
        values = np.array([m["loss_per_codebook"] for m in per_codebook])
        for index in range(values.shape[1]):
            axis.plot([m["step"] for m in per_codebook], values[:, index], label=f"codebook {index}")
        _legend_outside(axis, fontsize="x-small")
        figures.append(("loss per codebook", _png(figure)))
    sampled = [e for e in evaluations if "stop_rate" in e]
    if len(sampled) > 1:
        figure, axis = _axes("Samples at each evaluation", "share / ratio")
        from higgs_train.evaluate.metrics import METRICS

        for key, label in ((m.summary, m.words) for m in METRICS.values()):
            points = [(e["step"], e[key]) for e in sampled if key in e]
            if points:
                axis.plot(*zip(*points), "o-", label=label)
        _legend_outside(axis)
        figures.append(("evaluation metrics", _png(figure)))
    return figures


def run_settings(cfg) -> dict:
    """The run's objective, task, model, data (a DPO run's pairs, a GRPO run's prompts), steps, lr, batch, adapter and
    precision, as words: report.html's settings table and the export's model card."""
    objective = cfg.get("objective", {}).get("name", "sft")
    data = {"dpo": f"pairs {cfg.data.get('pairs')}", "grpo": f"prompts from {cfg.data.path}"}.get(
        objective, str(cfg.data.path))
    adapter = "full fine-tuning" if cfg.peft.type == "none" else \
        f"LoRA r {cfg.peft.r}, alpha {cfg.peft.alpha} on {', '.join(cfg.peft.target_modules)}"
    return {"objective": objective, "task": cfg.task.name, "model": cfg.model.name_or_path, "data": data,
            "steps": cfg.trainer.max_steps,
            "lr": f"{cfg.optim.lr:g} ({cfg.optim.scheduler}, warmup {cfg.optim.warmup_steps})",
            "batch": f"{cfg.trainer.batch_size} x {cfg.trainer.gradient_accumulation_steps} accumulation",
            "adapter": adapter, "precision": cfg.trainer.precision, "seed": cfg.seed}


def _settings(run_dir: Path) -> str:
    config = run_dir / ".hydra" / "config.yaml"
    if not config.is_file():
        return ""
    from omegaconf import OmegaConf

    cells = "".join(f"<tr><th>{html.escape(k)}</th><td class='text'>{html.escape(str(v))}</td></tr>"
                    for k, v in run_settings(OmegaConf.load(config)).items())
    return f"<h2>Run settings</h2><table>{cells}</table>"


def _spectrogram(path: Path) -> str | None:
    import librosa
    import matplotlib.pyplot as plt
    import soundfile as sf

    try:
        waveform, rate = sf.read(path, dtype="float32", always_2d=True)
    except (OSError, RuntimeError):
        return None
    if len(waveform) < 512:
        return None
    power = librosa.amplitude_to_db(np.abs(librosa.stft(waveform.mean(axis=1), n_fft=1024)), ref=np.max)
    figure, axis = plt.subplots(figsize=(6, 1.6))
    axis.imshow(power, origin="lower", aspect="auto", cmap="magma",
                extent=(0, len(waveform) / rate, 0, rate / 2000))
    axis.set_xlabel("s")
    axis.set_ylabel("kHz")
    return _png(figure)


def _target_copy(run_dir: Path, sample: dict) -> str | None:
    """The sample's target (or reference) clip, copied beside the report once; its path relative to the run dir."""
    source = sample.get("target_audio")
    if not source or not Path(source).is_file():
        return None
    copy = run_dir / "samples" / "targets" / f"{str(sample['id']).replace('/', '_')}{Path(source).suffix}"
    if not copy.is_file():
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, copy)
    return copy.relative_to(run_dir).as_posix()


def _clip(run_dir: Path, relative: str, caption: str) -> str:
    image = _spectrogram(run_dir / relative)
    picture = f'<img alt="spectrogram of {html.escape(relative)}" src="{image}">' if image else ""
    return (f'<div>{html.escape(caption)}<br><audio controls preload="metadata" src="{html.escape(relative)}">'
            f"</audio>{picture}</div>")


def _sample(run_dir: Path, sample: dict) -> str:
    path = Path(sample["path"])  # samples/step_N/ID.wav, wherever the run directory has moved since
    own = f"samples/{path.parent.name}/{path.name}"
    from higgs_train.evaluate.metrics import in_words

    facts = ", ".join([f"{sample['frames']} frames",
                       "stopped" if sample["stopped"] else "did not stop (ran to eval.max_new_tokens)",
                       *in_words(sample)])
    title = f"<b>{html.escape(str(sample['id']))}</b>: {html.escape(sample.get('text', ''))}"
    parts = [f"{title}<br><small>{facts}</small>", _clip(run_dir, own, "generated")]
    target = _target_copy(run_dir, sample)
    if target:
        parts.append(_clip(run_dir, target, "target / reference"))
    return f'<div class="sample">{"".join(parts)}</div>'


def _table(evaluations: list[dict]) -> str:
    """One row per evaluation; a metric its judge did not measure says so (e.g. not measured (set
    eval.asr_model)); val_loss is the mean over codebooks, as the loss curve."""
    missing = {k: v for e in evaluations for k, v in e.get("not_measured", {}).items()}
    shown = [c for c in evaluation_columns() if any(c in e for e in evaluations) or c in missing]
    head = "".join(f"<th>{c}</th>" for c in ("step", *shown))
    rows = "".join("<tr>" + f"<td>{e['step']}</td>" + "".join(
        f"<td>{e[c]:.4g}</td>" if isinstance(e.get(c), (int, float)) else
        f"<td class='missing'>{html.escape(missing.get(c, ''))}</td>" for c in shown) + "</tr>" for e in evaluations)
    return f"<table><tr>{head}</tr>{rows}</table>"


def _jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:  # a line being written
            continue
    return records


def write_report(run_dir: Path) -> Path:
    """(Re)writes `run_dir/report.html` from `metrics.jsonl`, `eval.jsonl` and the samples; returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    run_dir = Path(run_dir)
    metrics, evaluations = _jsonl(run_dir / "metrics.jsonl"), _jsonl(run_dir / "eval.jsonl")
    config = run_dir / ".hydra" / "config.yaml"
    objective = yaml.safe_load(config.read_text()).get("objective", {}).get("name", "sft") if config.is_file() \
        else "sft"
    curves = "".join(f'<img alt="{alt}" src="{image}">' for alt, image in _curves(metrics, evaluations, objective)) \
        if metrics else "<p>no logged step yet</p>"
    samples = "".join(f"<h3>step {e['step']}</h3>" + "".join(_sample(run_dir, s) for s in e["samples"])
                      for e in reversed(evaluations) if e.get("samples"))
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(run_dir.name)}: higgs-train "
            f"report</title><style>{STYLE}</style></head><body><h1>{html.escape(str(run_dir))}</h1>"
            f"<p id='problems'></p>{_settings(run_dir)}<h2>Training curves</h2>{curves}<h2>Evaluations</h2>"
            f"{_table(evaluations)}"
            f"<h2>Samples (newest first)</h2>{samples or '<p>none yet</p>'}{CHECK}</body></html>")
    return atomic.write_text(run_dir / "report.html", page)
