"""Audio -> codes through the model's own audio tokenizer, once per distinct clip."""

from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from higgs_train.data.audio import load_audio


@torch.no_grad()
def encode_waveform(audio_tokenizer, waveform: np.ndarray) -> torch.Tensor:
    """A 24 kHz mono waveform -> (K, T) codes."""
    device = next(audio_tokenizer.parameters()).device
    values = torch.from_numpy(waveform).to(device)[None, None, :]
    return audio_tokenizer.encode(values).audio_codes[0].cpu()


def attach_codes(conversations: list[dict], audio_tokenizer, show_progress: bool = True) -> None:
    """Fill `codes` into every audio item that has a `path`, encoding each distinct file once."""
    paths = sorted({item["path"] for row in conversations for message in row["messages"]
                    for item in message["content"] if item["type"] == "audio" and "codes" not in item})
    codes = {}
    for path in tqdm(paths, desc="encoding audio", unit="clip", disable=not show_progress):
        codes[path] = encode_waveform(audio_tokenizer, load_audio(path))
    for row in conversations:
        for message in row["messages"]:
            for item in message["content"]:
                if item["type"] == "audio" and "codes" not in item:
                    item["codes"] = codes[item["path"]]
