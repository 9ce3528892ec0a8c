"""Loads a `higgs-export format=boson` folder the way Boson's HiggsAudioServeEngine does, with Boson's own code, in
an environment of Boson's (its requirements pin transformers>=4.45.1,<4.47.0). Not part of the test suite: Boson's
code is not a dependency of this project; tests/test_serving.py checks the same keys and files against lists, and
BENCHMARKS.md ("Boson's engine on a format=boson export") records this script's run.

    git clone https://github.com/boson-ai/higgs-audio /tmp/boson-src
    python -m venv /tmp/boson-env && /tmp/boson-env/bin/pip install "transformers==4.46.3" torch librosa loguru \
        dacite json_repair
    PYTHONPATH=/tmp/boson-src /tmp/boson-env/bin/python scripts/check_boson_export.py EXPORT_FOLDER

What it runs: `HiggsAudioServeEngine.__init__` on the CPU (the model with torch_dtype="auto", the text tokenizer by
AutoTokenizer, the special tokens, the static KV caches, the collator), with Boson's audio tokenizer replaced by a
stand-in (the export does not carry Boson's audio tokenizer format: give the engine bosonai/higgs-audio-v2-tokenizer);
then the forward pass that `HiggsAudioModel.capture_model` makes on a GPU to capture its CUDA graphs, with the dummy
inputs it builds from `config.hidden_size` and `config.torch_dtype`, without the graph; then the model's forward on a
prompt of the engine's own tokenizer.
"""

import sys
import types
from pathlib import Path

import torch


def main(export: Path) -> None:
    stand_in = types.ModuleType("boson_multimodal.audio_processing.higgs_audio_tokenizer")
    stand_in.load_higgs_audio_tokenizer = lambda name, device: types.SimpleNamespace(tps=25, sampling_rate=24000)
    sys.modules[stand_in.__name__] = stand_in
    import transformers
    from boson_multimodal.serve.serve_engine import HiggsAudioServeEngine

    engine = HiggsAudioServeEngine(str(export), "bosonai/higgs-audio-v2-tokenizer", device="cpu",
                                   kv_cache_lengths=[64])
    model, config = engine.model, engine.model.config
    dtypes = {p.dtype for p in model.parameters()}
    print(f"transformers {transformers.__version__}; engine built: model {type(model).__name__} in {model.dtype} "
          f"(config.torch_dtype {config.torch_dtype}, parameters {sorted(map(str, dtypes))}), tokenizer "
          f"{type(engine.tokenizer).__name__}, audio_out_bos {model.audio_out_bos_token_id}, audio_eos "
          f"{model.audio_eos_token_id}")
    cache = engine.kv_caches[64]
    for decoding_audio in (True, False):  # capture_model's dummy inputs, run without the CUDA graph
        mask = torch.ones((1, 1, 1, 64), dtype=config.torch_dtype)
        hidden, _, _ = model._forward_core(
            hidden_states=torch.zeros((1, 1, config.hidden_size), dtype=config.torch_dtype), causal_mask=mask,
            position_ids=torch.zeros((1, 1), dtype=torch.long),
            audio_discrete_codes_mask=torch.tensor([[decoding_audio]]), cache_position=torch.tensor([63]),
            past_key_values=cache, use_cache=True, audio_attention_mask=torch.ones_like(mask),
            fast_forward_attention_mask=torch.ones_like(mask), output_attentions=False, output_hidden_states=False,
            is_decoding_audio_token=decoding_audio)
        print(f"capture warm-up (decoding audio: {decoding_audio}): hidden {tuple(hidden.shape)} {hidden.dtype}")
    ids = engine.tokenizer.encode("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHello there."
                                  "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n<|audio_out_bos|>",
                                  add_special_tokens=False)
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.bool))
    print(f"forward on a {len(ids)}-token prompt: logits {tuple(out.logits.shape)}, finite "
          f"{bool(torch.isfinite(out.logits.float()).all())}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
