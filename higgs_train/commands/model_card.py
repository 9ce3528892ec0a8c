"""The model card (`README.md`) every export carries, in place of PEFT's empty template with a cache path as its base:
the base model's id as the user gave it, the data, the recipe's settings, the evaluation of the exported weights, and
how to load them. Written with huggingface_hub's ModelCard, so the Hub reads its metadata."""

from __future__ import annotations

import json
from pathlib import Path

from higgs_train.evaluate.report import evaluation_columns, run_settings
from higgs_train.model.hub import HUB_ID

LOADING = {
    "adapter": """```python
from peft import PeftModel
from transformers import AutoProcessor, HiggsAudioV2ForConditionalGeneration

{builtin}base = HiggsAudioV2ForConditionalGeneration.from_pretrained({base_path})
model = PeftModel.from_pretrained(base, "{folder}")
processor = AutoProcessor.from_pretrained({base_path})
```

or speak with it at once: `higgs-generate model={base} adapter={folder} text="Hello there." out=hello.wav`""",
    "merged": """```python
from transformers import AutoProcessor, HiggsAudioV2ForConditionalGeneration

model = HiggsAudioV2ForConditionalGeneration.from_pretrained("{folder}")
processor = AutoProcessor.from_pretrained("{folder}")
```

or speak with it at once: `higgs-generate model={folder} text="Hello there." out=hello.wav`""",
    "boson": "Boson's layout: give this folder to `HiggsAudioServeEngine` or Boson's vLLM image (its audio "
             "tokenizer is `audio_tokenizer/`).",
}


def _evaluation(run_dir: Path, step: int | None) -> tuple[int | None, dict]:
    """(step, metrics) of the exported weights' evaluation: that step's line of eval.jsonl, else the last one."""
    path = run_dir / "eval.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
    chosen = next((e for e in lines if e["step"] == step), lines[-1] if lines else None)
    if chosen is None:
        return None, {}
    return chosen["step"], {k: chosen[k] for k in evaluation_columns() if isinstance(chosen.get(k), (int, float))}


def _data_summary(cfg, run_dir: Path) -> str:
    summary_file = run_dir / "run_summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    parts = [run_settings(cfg)["data"]]
    if summary.get("conversations") is not None:
        parts.append(f"{summary['conversations']} conversations trained on, {summary['held_out']} held out for "
                     "validation")
    if summary.get("skipped_rows"):
        parts.append(f"left out: {summary['skipped_rows']}")
    if summary.get("steps"):
        parts.append(f"trained {summary['steps']} steps")
    return "; ".join(str(p) for p in parts)


def _base_in_python(base: str) -> dict:
    """A built-in checkpoint is a folder higgs-train makes: Python asks for it by its name."""
    if base.startswith("builtin:"):
        return {"builtin": "from higgs_train.builtins.assets import resolve\n\n", "base_path": f'resolve("{base}")'}
    return {"builtin": "", "base_path": f'"{base}"'}


def write_model_card(folder: Path, cfg, run_dir: Path, kind: str, step: int | None, shown_folder: Path) -> Path:
    """`folder/README.md` for an export of `kind` (adapter | merged | boson) of the weights of `step` (None: the
    final ones); `shown_folder` is where the export ends up (the card's load lines name it)."""
    from huggingface_hub import ModelCard, ModelCardData

    base = str(cfg.model.name_or_path)
    evaluated_step, metrics = _evaluation(run_dir, step)
    data = ModelCardData(base_model=base if HUB_ID.match(base) else None, library_name=(
        "peft" if kind == "adapter" else "transformers"), pipeline_tag="text-to-speech",
        tags=["higgs-audio", "higgs-train", *(["lora"] if cfg.peft.type != "none" else [])])
    settings = "\n".join(f"| {k} | {v} |" for k, v in run_settings(cfg).items())
    if metrics:
        table = ("| " + " | ".join(["step", *metrics]) + " |\n|" + "---|" * (len(metrics) + 1) + "\n| "
                 + " | ".join([str(evaluated_step), *(f"{v:.4g}" for v in metrics.values())]) + " |")
        which = "" if evaluated_step == step or step is None else \
            f" (step {step} was not evaluated; this is the run's last evaluation)"
    else:
        table, which = "No evaluation was measured for these weights.", ""
    text = f"""---
{data.to_yaml()}
---

# {shown_folder.name}: Higgs Audio V2 fine-tuned with higgs-train

Base model: `{base}`. Exported from the run `{run_dir}` ({kind}{f", step {step}" if step else ", final weights"}).

## Data

{_data_summary(cfg, run_dir)}

## Recipe and settings

| setting | value |
|---|---|
{settings}

The full config is the run's `.hydra/config.yaml`.

## Evaluation{which}

{table}

## How to load it

{LOADING[kind].format(base=base, folder=shown_folder, **_base_in_python(base))}
"""
    ModelCard(text).save(folder / "README.md")
    return folder / "README.md"
