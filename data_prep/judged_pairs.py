"""`higgs-prep pairs`: preference pairs from the model's own samples, judged by the metric registry.

For every prompt of a dataset (its task's conversations, each with the clip it was made from), N candidates are
sampled from the model being tuned (a base, a merged export, or base + an SFT adapter), decoded and measured
(stop, duration, trailing silence, loops; WER and speaker similarity where their judges are given). The pairing
rule then makes at most one pair per prompt:

- `hard-then-soft` (default): a candidate that fails a hard judge (did not stop before the token limit, a duration
  ratio outside `--duration-band`, a loop share above `--max-loop-share`, trailing silence above
  `--max-trailing-silence`) is always rejected before any soft score counts. The candidates that pass are ranked by
  WER, then speaker similarity (when measured), then duration error; the best is chosen (if its WER is at most
  `--max-chosen-wer`). The rejected one is the worst failing candidate: one that never stopped before any other
  (the runaway users meet first, and the failure a pair most needs to show), then the one failing the most hard
  judges, then the furthest from the expected length; when every candidate passes, the last-ranked one, if it is
  worse than the chosen one on the ranking and better on no measured soft score (the Koel-TTS rule).
- `pareto`: Koel-TTS's: candidates ranked by Pareto fronts on (WER, similarity), a hard failure behind every
  front; chosen from the first front (lowest WER), rejected from the last; dropped if the rejected one is better on
  either. Needs an ASR or speaker judge.

With `--with-greedy`, one of the N candidates is the greedy answer (repetition-aware sampling off), the one
`higgs-eval` and greedy inference give: a runaway there becomes the rejected answer, which is what moves greedy
decoding (on the tiny kit's runaway base, one comparison of three seeds: DPO met the stop and length goals in 3 runs
with it and 2 without; BENCHMARKS.md). Sampling is seeded by the prompt and `--seed`, never by the model's folder.

Candidates are cached per prompt, keyed by the model's files, the prompt, the sampling settings, the seed and
`--with-greedy`, under the data's code cache (`codes/<tokenizer>/candidates/`): a run killed half way goes on where
it stopped, and a second run on the same inputs samples nothing. Judgements are kept with them, keyed by the judges.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from higgs_train.builtins import assets
from higgs_train.config.files import CONFIG_DIR
from higgs_train.data.code_cache import tokenizer_fingerprint
from higgs_train.data.collator import ConversationCollator, prompt_messages
from higgs_train.data.conversations import dataset_root
from higgs_train.data.loader import task_conversations
from higgs_train.data.pair_table import REFERENCE_FILES, write_pairs
from higgs_train.evaluate.judge_answer import AnswerJudge
from higgs_train.evaluate.judges import JUDGE_SETTINGS, Judges
from higgs_train.evaluate.samples import generate_codes
from higgs_train.model.loading import checkpoint_identity, load_for_inference
from higgs_train.runtime import atomic, ownership
from higgs_train.runtime.errors import UserError
from higgs_train.runtime.progress import progress_bar

RULES = ("hard-then-soft", "pareto")
JUDGE_KEYS = tuple(setting.removeprefix("eval.") for setting in JUDGE_SETTINGS)  # --asr-model as options.asr_model


class PairsError(UserError):
    """The pairs cannot be built as asked; the message names the option to change."""


def _key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:20]


def _conversation_key(conversation: dict) -> str:
    """The prompt as the model sees it: its texts and its clips' codes."""
    digest = hashlib.sha256()
    for message in prompt_messages(conversation["messages"]):
        digest.update(message["role"].encode())
        for item in message["content"]:
            digest.update(item["text"].encode() if item["type"] == "text" else item["codes"].numpy().tobytes())
    return digest.hexdigest()


def failures(record: dict, options) -> list[str]:
    """The hard judges a candidate fails."""
    low, high = options.duration_band
    failed = [] if record["stopped"] else ["did not stop"]
    if not low <= record["duration_ratio"] <= high:
        failed.append(f"duration ratio {record['duration_ratio']:.2f} outside [{low}, {high}]")
    if record["loop_share"] > options.max_loop_share:
        failed.append(f"loop share {record['loop_share']:.2f}")
    if record["trailing_silence"] > options.max_trailing_silence:
        failed.append(f"trailing silence {record['trailing_silence']:.2f}")
    return failed


def _soft(record: dict) -> tuple:
    """Lower is better: WER, then speaker dissimilarity (when measured), then distance from the expected length."""
    return (record.get("wer", 0.0), -record.get("speaker_similarity", 0.0), record["duration_error"])


def _better_on_a_measured_score(rejected: dict, chosen: dict) -> bool:
    return any(key in chosen and key in rejected and (rejected[key] < chosen[key] if key == "wer" else
                                                     rejected[key] > chosen[key])
               for key in ("wer", "speaker_similarity"))


def _hard_then_soft(records: list[dict], options) -> tuple[int, int, str] | str:
    failed = {i: failures(r, options) for i, r in enumerate(records)}
    passing = sorted((i for i in failed if not failed[i]), key=lambda i: _soft(records[i]))
    if not passing:
        return "no candidate passed the hard judges"
    chosen = passing[0]
    if records[chosen].get("wer", 0.0) > options.max_chosen_wer:
        return f"the best candidate's WER is above --max-chosen-wer={options.max_chosen_wer}"
    losers = sorted((i for i in failed if failed[i]),
                    key=lambda i: (not records[i]["stopped"], len(failed[i]), records[i]["duration_error"]))
    if losers:
        return chosen, losers[-1], "rejected failed: " + "; ".join(failed[losers[-1]])
    rejected = passing[-1]
    if _soft(records[rejected]) <= _soft(records[chosen]) or \
            _better_on_a_measured_score(records[rejected], records[chosen]):
        return "every candidate passed and none is worse than the best on the soft scores"
    return chosen, rejected, "both passed; rejected ranks last on WER, similarity, duration"


def _pareto(records: list[dict], options) -> tuple[int, int, str] | str:
    if not any("wer" in r or "speaker_similarity" in r for r in records):
        raise PairsError("--rule pareto ranks by WER and speaker similarity: give --asr-model and/or "
                         "--speaker-model (or use --rule hard-then-soft)")
    points = {i: (r.get("wer", 0.0), -r.get("speaker_similarity", 0.0)) for i, r in enumerate(records)}
    failed = {i for i, r in enumerate(records) if failures(r, options)}
    fronts, left = [], set(points) - failed
    while left:
        front = {i for i in left if not any(all(a <= b for a, b in zip(points[j], points[i])) and points[j] != points[i]
                                            for j in left)}
        fronts.append(front)
        left -= front
    if failed:
        fronts.append(failed)
    if len(fronts) < 2:
        return "one Pareto front: no candidate is worse than another"
    chosen = min(fronts[0], key=lambda i: points[i])
    rejected = max(fronts[-1], key=lambda i: points[i])
    if records[chosen].get("wer", 0.0) > options.max_chosen_wer:
        return f"the best candidate's WER is above --max-chosen-wer={options.max_chosen_wer}"
    if _better_on_a_measured_score(records[rejected], records[chosen]):
        return "the last front is better than the first on one score"
    return chosen, rejected, f"Pareto fronts 1 and {len(fronts)} on (WER, similarity)"


def pair_rule(records: list[dict], options):
    """(chosen, rejected, why) among a prompt's judged candidates, or the reason there is no pair."""
    return (_pareto if options.rule == "pareto" else _hard_then_soft)(records, options)


class CandidateCache:
    """Each prompt's sampled candidates (codes, stopped) and their judgements, one file per prompt."""

    def __init__(self, folder: Path):
        self.folder = folder

    def load(self, key: str) -> dict | None:
        path = self.folder / f"{key}.npz"
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as stored:
            return {"codes": [stored[f"codes_{i}"] for i in range(int(stored["count"]))],
                    "stopped": stored["stopped"].tolist(), "judged": json.loads(str(stored["judged"]))}

    def save(self, key: str, entry: dict) -> None:
        arrays = {f"codes_{i}": np.asarray(c, dtype=np.int16) for i, c in enumerate(entry["codes"])}
        with atomic.atomic_output(self.folder / f"{key}.npz", unique=True) as partial:
            with open(partial, "wb") as handle:
                np.savez(handle, count=len(entry["codes"]), stopped=np.array(entry["stopped"]),
                         judged=json.dumps(entry["judged"]), **arrays)


def _sampling(options) -> OmegaConf:
    eval_defaults = OmegaConf.load(CONFIG_DIR / "eval" / "default.yaml")
    return OmegaConf.merge(eval_defaults, {"do_sample": True, "temperature": options.temperature,
                                           "max_new_tokens": options.max_new_tokens,
                                           "ras_win_len": options.ras_win_len or None,
                                           "batch_size": options.samples_per_prompt,
                                           "language": options.language,
                                           **{key: getattr(options, key) for key in JUDGE_KEYS}})


def _greedy(sampling) -> OmegaConf:
    """The decoding higgs-eval uses: greedy (`generate_codes` then switches repetition-aware sampling off)."""
    return OmegaConf.merge(sampling, {"do_sample": False})


def check_options(options) -> None:
    """Options that cannot make pairs, refused in one line before any weight loads."""
    if options.rule not in RULES:
        raise PairsError(f"--rule {options.rule}: use one of {list(RULES)}")
    if options.samples_per_prompt < 2:
        greedy = " (--with-greedy's greedy answer is one of them)" if options.with_greedy else ""
        raise PairsError(f"--samples-per-prompt {options.samples_per_prompt}: a pair needs two answers{greedy}; give "
                         "--samples-per-prompt 2 or more")
    positive = {"--max-new-tokens": options.max_new_tokens, "--temperature": options.temperature}
    at_least_zero = {"--ras-win-len": options.ras_win_len, "--limit": options.limit, "--seed": options.seed,
                     "--max-chosen-wer": options.max_chosen_wer}
    shares = {"--max-loop-share": options.max_loop_share, "--max-trailing-silence": options.max_trailing_silence}
    for name, value in positive.items():
        if not math.isfinite(value) or value <= 0:
            raise PairsError(f"{name} {value}: must be above 0")
    for name, value in at_least_zero.items():
        if not math.isfinite(value) or value < 0:
            raise PairsError(f"{name} {value}: must be 0 or more")
    for name, value in shares.items():
        if not 0 <= value <= 1:
            raise PairsError(f"{name} {value}: a share, must be in [0, 1]")
    low, high = options.duration_band
    if not (math.isfinite(low) and math.isfinite(high) and 0 <= low < 1 < high):
        raise PairsError(f"--duration-band {low} {high}: the duration ratios a candidate may have, LOW from 0 (no "
                         "lower bound) to below 1 and HIGH above 1 (default 0.8 1.25)")


def build_pairs(options) -> dict:
    """Samples, judges and pairs; writes the pairs folder; returns its info (counts and reasons)."""
    check_options(options)
    out = Path(options.out)
    ownership.check_replaceable(out, "pairs", "--out", also_ours=REFERENCE_FILES)
    device = torch.device(options.device)
    model_path = assets.resolve(options.model)
    model, processor = load_for_inference(model_path, options.adapter, device)
    audio_tokenizer = processor.audio_tokenizer
    collator = ConversationCollator(processor.tokenizer, model.config)
    data_path = Path(assets.resolve(options.data))
    data_cfg = OmegaConf.merge(OmegaConf.load(CONFIG_DIR / "data" / "jsonl.yaml"), {"path": str(data_path)})
    prompts, skipped = task_conversations(data_cfg.path, data_cfg, options.task, options.seed, collator,
                                          audio_tokenizer)
    count = min(options.limit or len(prompts), len(prompts))
    sampling = _sampling(options)
    judges = Judges.load(sampling)
    cache = CandidateCache(dataset_root(data_path) / "codes" / tokenizer_fingerprint(audio_tokenizer) / "candidates")
    judge = AnswerJudge(audio_tokenizer, sampling, judges)
    settings = OmegaConf.to_container(sampling)
    identity = [checkpoint_identity(model_path, options.adapter),
                {k: settings[k] for k in ("do_sample", "temperature", "max_new_tokens", "ras_win_len",
                                          "ras_win_max_num_repeat", "batch_size")}, options.seed, options.with_greedy]
    pairs, clips, reasons, sampled = [], [], {}, 0
    for index in progress_bar(range(count), desc="pairing prompts", unit="prompt"):
        conversation = prompts[index]
        prompt_key = _conversation_key(conversation)
        key = _key(identity, prompt_key)
        entry = cache.load(key)
        if entry is None:
            # seeded by the prompt and --seed alone: the same model in another folder samples the same candidates
            torch.manual_seed(int(_key(prompt_key, options.seed)[:8], 16))
            sampled_here = options.samples_per_prompt - options.with_greedy
            generated = generate_codes(model, collator, [conversation] * sampled_here, sampling)
            if options.with_greedy:
                generated = generate_codes(model, collator, [conversation], _greedy(sampling)) + generated
            entry = {"codes": [c.numpy() for c, _ in generated], "stopped": [bool(s) for _, s in generated],
                     "judged": {}}
            sampled += 1
        judged_by = json.dumps(judges.names(), sort_keys=True)
        if entry["judged"].get("by") != judged_by:
            entry["judged"] = {"by": judged_by, "records": [
                judge(conversation, torch.from_numpy(codes.astype(np.int64)), stopped)
                for codes, stopped in zip(entry["codes"], entry["stopped"])]}
            cache.save(key, entry)
        records = entry["judged"]["records"]
        chosen = pair_rule(records, options)
        if isinstance(chosen, str):
            reasons[chosen] = reasons.get(chosen, 0) + 1
            continue
        best, worst, why = chosen
        prompt = _stored_prompt(prompt_messages(conversation["messages"]), clips)
        pairs.append({"id": str(conversation["id"]), "prompt": prompt, "chosen": len(clips),
                      "rejected": len(clips) + 1, "chosen_stopped": entry["stopped"][best],
                      "rejected_stopped": entry["stopped"][worst],
                      "scores": {"chosen": records[best], "rejected": records[worst], "rule": why}})
        clips += [entry["codes"][best], entry["codes"][worst]]
    info = {"model": options.model, "adapter": options.adapter, "data": str(data_path), "task": options.task,
            "prompts": count, "samples_per_prompt": options.samples_per_prompt, "sampled_now": sampled,
            "sampling": settings,
            "rule": options.rule, "thresholds": {"duration_band": list(options.duration_band),
                                                 "max_loop_share": options.max_loop_share,
                                                 "max_trailing_silence": options.max_trailing_silence,
                                                 "max_chosen_wer": options.max_chosen_wer},
            "judges": judges.names(), "no_pair": reasons, "data_left_out": skipped}
    if not pairs:
        raise PairsError(f"no pair from {count} prompts ({reasons}); sample more candidates (--samples-per-prompt), at "
                         "another --temperature, or widen the hard judges (--duration-band)")
    write_pairs(out, pairs, clips, info)
    return {**info, "pairs": len(pairs), "out": str(out)}


def _stored_prompt(messages: list[dict], clips: list) -> list[dict]:
    """The prompt with each clip's codes moved to `clips`, its item naming it by index."""
    stored = []
    for message in messages:
        content = []
        for item in message["content"]:
            if item["type"] == "audio":
                clips.append(item["codes"].numpy())
                item = {k: v for k, v in item.items() if k != "codes"} | {"clip": len(clips) - 1}
            content.append(item)
        stored.append({**message, "content": content})
    return stored

