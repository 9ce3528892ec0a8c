"""`higgs-prep pairs`: which candidate the pairing rule rejects, the greedy candidate being the answer greedy
decoding gives, and the candidate cache (a second run on the same inputs samples nothing)."""

import shutil
from argparse import Namespace

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from data_prep import judged_pairs as pairs_module
from data_prep.cli import _parser
from data_prep.judged_pairs import PairsError, _greedy, _sampling, build_pairs, pair_rule
from higgs_train.config.files import CONFIG_DIR
from higgs_train.data.collator import ConversationCollator
from higgs_train.data.loader import task_conversations
from higgs_train.evaluate.samples import generate_codes
from higgs_train.model.loading import load_for_inference

RULE = Namespace(rule="hard-then-soft", duration_band=(0.8, 1.25), max_loop_share=0.2, max_trailing_silence=0.3,
                 max_chosen_wer=0.1)


def _record(stopped: bool, ratio: float, trailing: float = 0.0) -> dict:
    return {"stopped": stopped, "duration_ratio": ratio, "duration_error": abs(float(np.log(max(ratio, 1e-3)))),
            "loop_share": 0.0, "trailing_silence": trailing}


def test_a_runaway_is_rejected_before_an_answer_that_stopped_too_early():
    # the early stop fails two hard judges (length, silence) and is further from the expected length
    records = [_record(True, 0.0, trailing=1.0), _record(True, 1.05), _record(False, 1.7), _record(True, 0.95)]
    chosen, rejected, why = pair_rule(records, RULE)
    assert (chosen, rejected) == (1, 2) and why.startswith("rejected failed: did not stop")
    # without a runaway, the one failing most hard judges
    assert pair_rule(records[:2] + [_record(True, 0.5)], RULE)[1] == 0


def _build(options) -> dict | str:
    """What a run gives that a second run must give too: its counts (not where it wrote), or why it made no pair."""
    try:
        info = build_pairs(options)
    except PairsError as error:
        return str(error)
    return {k: v for k, v in info.items() if k not in ("out", "sampled_now")}


@pytest.mark.slow  # samples and decodes with the tiny kit
def test_pairs_are_sampled_once_and_the_greedy_candidate_is_the_greedy_answer(tiny_checkpoint, demo_dir, tmp_path,
                                                                            monkeypatch):
    data = tmp_path / "demo"
    shutil.copytree(demo_dir, data)
    options = _parser().parse_args(["pairs", "--model", str(tiny_checkpoint), "--data", str(data / "train.jsonl"),
                                    "--out", str(tmp_path / "pairs"), "--samples-per-prompt", "3", "--limit", "2",
                                    "--max-new-tokens", "30", "--ras-win-len", "0", "--duration-band", "0", "99",
                                    "--with-greedy"])
    first = _build(options)
    # the second run reads every candidate from the cache: sampling again would fail it
    monkeypatch.setattr(pairs_module, "generate_codes", lambda *args: pytest.fail("sampled a cached prompt again"))
    again = _build(Namespace(**{**vars(options), "out": str(tmp_path / "again")}))
    assert again == first  # the same pairs, or the same reason there are none (random weights rarely stop)

    stored = sorted((data / "codes").glob("*/candidates/*.npz"))
    assert len(stored) == 2
    model, processor = load_for_inference(str(tiny_checkpoint), None, torch.device("cpu"))
    collator = ConversationCollator(processor.tokenizer, model.config)
    data_cfg = OmegaConf.merge(OmegaConf.load(CONFIG_DIR / "data" / "jsonl.yaml"), {"path": str(data / "train.jsonl")})
    prompts, _ = task_conversations(data_cfg.path, data_cfg, "smart_voice", 0, collator, processor.audio_tokenizer)
    greedy = [codes.numpy() for codes, _ in generate_codes(model, collator, [prompts[0], prompts[1]],
                                                           _greedy(_sampling(options)))]
    firsts = [np.load(path)["codes_0"] for path in stored]
    assert sorted(c.tobytes() for c in firsts) == sorted(c.astype(np.int16).tobytes() for c in greedy)
