"""Loading the model and processor the same way for a hub id and a local folder, with the attention backend chosen."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import torch
from transformers import AutoProcessor, HiggsAudioV2ForConditionalGeneration

from higgs_train.model.hub import go_offline_unless_reachable
from higgs_train.runtime.errors import UserError
from higgs_train.runtime.logs import NOTICE, logger


class ModelLoadError(UserError):
    """The model or processor could not be loaded; the message says what to point `model.name_or_path` at."""


def resolve_attn_implementation(requested: str, device: torch.device) -> str:
    """`auto` picks FlashAttention 2 when it is installed and the device is CUDA, SDPA otherwise."""
    if requested != "auto":
        return requested
    if device.type == "cuda" and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def _explain(name_or_path: str, error: Exception) -> ModelLoadError:
    if name_or_path in ("tiny", "demo"):
        return ModelLoadError(f"cannot load {name_or_path!r}: no such folder or hub id; the built-in test checkpoint "
                              "is spelled builtin:tiny in every tool (the demo data builtin:demo)")
    return ModelLoadError(
        f"cannot load {name_or_path!r} ({type(error).__name__}: {str(error).splitlines()[0]}); if the Hub is out of "
        "reach, download it elsewhere and point at the folder (or builtin:tiny, the built-in test checkpoint)"
    )


BUNDLED_AUDIO_TOKENIZER = "audio_tokenizer"  # an export's own copy of its audio tokenizer, named from its folder


def bundles_audio_tokenizer(folder: str | Path) -> bool:
    """Whether `folder`'s processor_config.json names its audio tokenizer by the bundled copy's relative name."""
    config = Path(folder) / "processor_config.json"
    if not config.is_file():
        return False
    named = (json.loads(config.read_text()).get("audio_tokenizer") or {}).get("audio_tokenizer_name_or_path")
    return named == BUNDLED_AUDIO_TOKENIZER and (Path(folder) / named).is_dir()


def load_processor(name_or_path: str):
    """The checkpoint's processor (text tokenizer, feature extractor and audio tokenizer), frozen. An export that
    bundles its audio tokenizer names it relative to its own folder, which Transformers reads from the working
    directory: it is loaded from inside that folder."""
    go_offline_unless_reachable(name_or_path)
    try:
        if bundles_audio_tokenizer(name_or_path):
            here = os.getcwd()
            os.chdir(name_or_path)
            try:
                processor = AutoProcessor.from_pretrained(os.getcwd())
                processor.audio_tokenizer.name_or_path = str(Path(BUNDLED_AUDIO_TOKENIZER).resolve())  # for re-export
            finally:
                os.chdir(here)
        else:
            processor = AutoProcessor.from_pretrained(name_or_path)
    except OSError as error:
        raise _explain(name_or_path, error) from None
    processor.audio_tokenizer.eval().requires_grad_(False)
    return processor


def load_model(name_or_path: str, attn_implementation: str, dtype: torch.dtype, use_text_head: bool, **kwargs):
    """`kwargs` go to `from_pretrained` (a `quantization_config` with its `device_map`)."""
    go_offline_unless_reachable(name_or_path)
    try:
        return HiggsAudioV2ForConditionalGeneration.from_pretrained(
            name_or_path, attn_implementation=attn_implementation, dtype=dtype, use_text_head=use_text_head, **kwargs
        )
    except OSError as error:
        raise _explain(name_or_path, error) from None


def load_audio_tokenizer(name_or_path: str):
    """The audio tokenizer of a model checkpoint (through its processor) or of a tokenizer checkpoint itself."""
    from transformers import AutoConfig, HiggsAudioV2TokenizerModel

    go_offline_unless_reachable(name_or_path)
    try:
        if AutoConfig.from_pretrained(name_or_path).model_type == "higgs_audio_v2_tokenizer":
            return HiggsAudioV2TokenizerModel.from_pretrained(name_or_path).eval().requires_grad_(False)
    except OSError as error:
        raise _explain(name_or_path, error) from None
    return load_processor(name_or_path).audio_tokenizer


def load_for_inference(path: str, adapter: str | None, device: torch.device):
    """(model in eval mode on `device`, processor); bf16 on CUDA, fp32 elsewhere. `path`: a folder or hub id (a
    `builtin:` name is resolved by the command that was given it)."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    loaded = load_model(path, resolve_attn_implementation("auto", device), dtype, use_text_head=False)
    if adapter:
        from peft import PeftModel

        warn_if_other_base(path, adapter)
        loaded = PeftModel.from_pretrained(loaded, adapter)
    processor = load_processor(path)
    processor.audio_tokenizer.to(device)
    return loaded.to(device).eval(), processor


def _base_names(value: str) -> set[str]:
    """The names one checkpoint goes by: as given, its real folder, and the hub id of a hub-cache snapshot folder
    (.../models--org--name/snapshots/<hash>)."""
    names = {value}
    path = Path(value)
    if path.exists():
        names.add(str(path.resolve()))
        cached = next((part for part in path.resolve().parts if part.startswith("models--")), None)
        if cached:
            names.add(cached.removeprefix("models--").replace("--", "/"))
    return names


def warn_if_other_base(model: str, adapter: str) -> None:
    """A notice when an adapter's own record names another base than the model it is put on: its weights then load
    (the shapes fit) and its numbers are those of a pairing it was never trained for."""
    import json

    try:
        recorded = json.loads((Path(adapter) / "adapter_config.json").read_text()).get("base_model_name_or_path")
    except (OSError, ValueError, AttributeError):
        return  # PEFT names what is wrong with the folder when it loads it
    if isinstance(recorded, str) and recorded and not _base_names(recorded) & _base_names(model):
        logger.log(NOTICE, f"adapter {adapter} was trained on {recorded}, and model={model} is another checkpoint; "
                   "what it does here is not what it learned (give model= the base it was trained on)")


def checkpoint_identity(*folders: str | None) -> list:
    """What tells one checkpoint (and adapter) from another without reading its weights: each folder and the name,
    size and modification time of its weight files; a hub id stands for itself."""
    identity = []
    for folder in (f for f in folders if f):
        path = Path(folder)
        files = sorted(path.glob("*.safetensors*")) + sorted(path.glob("*.bin")) if path.is_dir() else []
        identity.append([str(path), [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files]])
    return identity
