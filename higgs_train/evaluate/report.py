"""`report.html` in the run directory, rewritten after each evaluation, for runs without a tracker (clusters with no
internet, where wandb is offline): the loss and per-codebook loss curves, the evaluation table, and for each
evaluation step each sample with an audio player, its spectrogram and the clip it should match. Self-contained:
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

from higgs_train import atomic

COLUMNS = ("val_loss", "val_accuracy", "stop_rate", "duration_ratio", "silent_share", "wer", "speaker_similarity")
STYLE = """body{font-family:sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}.sample{margin:1em 0;padding:.5em;border:1px solid #ddd}
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


def _curves(metrics: list[dict], evaluations: list[dict]) -> list[str]:
    import matplotlib.pyplot as plt

    figures = []
    figure, axis = plt.subplots(figsize=(7, 3))
    axis.plot([m["step"] for m in metrics], [m["loss"] for m in metrics], label="training loss")
    validated = [e for e in evaluations if "val_loss" in e]
    if validated:
        axis.plot([e["step"] for e in validated], [e["val_loss"] for e in validated], "o-", label="validation loss")
    axis.set_xlabel("step")
    axis.legend()
    figures.append(_png(figure))
    per_codebook = [m for m in metrics if m.get("loss_per_codebook")]
    if per_codebook:
        figure, axis = plt.subplots(figsize=(7, 3))
        values = np.array([m["loss_per_codebook"] for m in per_codebook])
        for index in range(values.shape[1]):
            axis.plot([m["step"] for m in per_codebook], values[:, index], label=f"codebook {index}")
        axis.set_xlabel("step")
        axis.legend(fontsize="x-small", ncol=4)
        figures.append(_png(figure))
    return figures


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
    facts = ", ".join(f"{key} {sample[key]:.3g}" if isinstance(sample[key], float) else f"{key} {sample[key]}"
                      for key in ("frames", "stopped", "duration_ratio", "silent_share", "wer", "speaker_similarity")
                      if key in sample)
    title = f"<b>{html.escape(str(sample['id']))}</b>: {html.escape(sample.get('text', ''))}"
    parts = [f"{title}<br><small>{facts}</small>", _clip(run_dir, own, "generated")]
    target = _target_copy(run_dir, sample)
    if target:
        parts.append(_clip(run_dir, target, "target / reference"))
    return f'<div class="sample">{"".join(parts)}</div>'


def _table(evaluations: list[dict]) -> str:
    shown = [c for c in COLUMNS if any(c in e for e in evaluations)]
    head = "".join(f"<th>{c}</th>" for c in ("step", *shown))
    rows = "".join("<tr>" + f"<td>{e['step']}</td>" + "".join(
        f"<td>{e[c]:.4g}</td>" if isinstance(e.get(c), (int, float)) else "<td></td>" for c in shown) + "</tr>"
        for e in evaluations)
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
    curves = "".join(f'<img alt="loss curve" src="{image}">' for image in _curves(metrics, evaluations)) \
        if metrics else "<p>no logged step yet</p>"
    samples = "".join(f"<h3>step {e['step']}</h3>" + "".join(_sample(run_dir, s) for s in e["samples"])
                      for e in reversed(evaluations) if e.get("samples"))
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(run_dir.name)}: higgs-train "
            f"report</title><style>{STYLE}</style></head><body><h1>{html.escape(str(run_dir))}</h1>"
            f"<p id='problems'></p><h2>Loss</h2>{curves}<h2>Evaluations</h2>{_table(evaluations)}"
            f"<h2>Samples (newest first)</h2>{samples or '<p>none yet</p>'}{CHECK}</body></html>")
    return atomic.write_text(run_dir / "report.html", page)
